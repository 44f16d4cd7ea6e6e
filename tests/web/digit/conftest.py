import pytest

from tests.factories import bearer, make_user, token_for


@pytest.fixture
def writer(db_session):
    return make_user(db_session, role="read-write", tenant="default")


@pytest.fixture
def writer_headers(app, writer):
    return bearer(app, writer)


@pytest.fixture
def writer_token(app, writer):
    return token_for(app, writer)
