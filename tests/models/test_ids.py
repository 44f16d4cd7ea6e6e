import uuid

import pytest

from models.ids import parse_uuid


def test_parses_uuids_in_any_spelling():
    value = uuid.uuid4()
    for text in (str(value), str(value).upper(), value.hex, f" {value} "):
        assert parse_uuid(text) == value
    assert parse_uuid(value) is value


@pytest.mark.parametrize("junk", ["", "x", "1" * 31, "g" * 32, "\x00" * 32, "1" * 100, None, 5, b"x", ["a"]])
def test_anything_else_is_none(junk):
    assert parse_uuid(junk) is None
