"""The JSON error mapper: malformed JSON, too deep, oversize, 404, 405, 415, and 5xx without text."""
import pytest
from flask import Blueprint

from web.jsonbody import read_json


@pytest.fixture
def echo_app(app):
    bp = Blueprint("echo_test", __name__)

    @bp.post("/_test/echo")
    def echo():
        body = read_json()
        return {"type": type(body).__name__}

    @bp.get("/_test/crash")
    def crash():
        raise RuntimeError("secret internal detail /etc/passwd")

    app.register_blueprint(bp)
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    return app


def test_malformed_json_is_400(echo_app):
    r = echo_app.test_client().post("/_test/echo", data=b'{"a": ', content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"] == "malformed_json"


def test_invalid_utf8_is_400(echo_app):
    r = echo_app.test_client().post("/_test/echo", data=b'{"a": "\xff"}', content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"] == "malformed_json"


def test_deep_nesting_is_400_not_500(echo_app):
    echo_app.config["MAX_CONTENT_LENGTH"] = 1_000_000
    deep = b"[" * 100_000 + b"]" * 100_000
    r = echo_app.test_client().post("/_test/echo", data=deep, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"] == "json_too_deep"


def test_oversize_body_is_413(echo_app):
    r = echo_app.test_client().post("/_test/echo", data=b"[" + b"1," * 10_000 + b"1]",
                                    content_type="application/json")
    assert r.status_code == 413
    assert r.get_json()["error"] == "payload_too_large"


def test_wrong_content_type_is_415(echo_app):
    r = echo_app.test_client().post("/_test/echo", data=b"<xml/>", content_type="application/xml")
    assert r.status_code == 415 and r.get_json()["error"] == "unsupported_media_type"


def test_unknown_path_is_404_json(echo_app):
    r = echo_app.test_client().get("/no/such/path")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"


def test_wrong_method_is_405_json_with_allow(echo_app):
    r = echo_app.test_client().get("/_test/echo")
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


def test_crash_is_500_without_exception_text(echo_app):
    r = echo_app.test_client().get("/_test/crash")
    assert r.status_code == 500
    assert b"secret" not in r.data and b"passwd" not in r.data and b"RuntimeError" not in r.data
    assert r.get_json()["error"] == "internal_error"


def test_nan_is_kept_as_a_marker_not_a_crash(echo_app):
    r = echo_app.test_client().post("/_test/echo", data=b'[NaN, 1]', content_type="application/json")
    assert r.status_code == 200 and r.get_json() == {"type": "list"}


class CountingStream:
    """A request body that arrives without a Content-Length (chunked): `total` bytes of a JSON array,
    generated as they are read; `pulled` counts what the server read."""

    def __init__(self, total: int):
        self.body = b"[" + b"1," * ((total - 3) // 2) + b"1" * (1 + (total - 3) % 2) + b"]"
        assert len(self.body) == total
        self.pulled = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self.body) - self.pulled
        chunk = self.body[self.pulled:self.pulled + size]
        self.pulled += len(chunk)
        return chunk


def _chunked(app, stream):
    # gunicorn (and Werkzeug's server) mark a chunked body they de-chunk with wsgi.input_terminated.
    # With Transfer-Encoding: chunked the request has no content length, whatever CONTENT_LENGTH says.
    return app.test_client().post("/_test/echo", content_type="application/json",
                                  headers={"Transfer-Encoding": "chunked"},
                                  environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True})


def test_a_chunked_body_over_the_cap_is_413_and_read_no_further_than_the_cap(echo_app):
    cap = echo_app.config["MAX_CONTENT_LENGTH"]
    stream = CountingStream(50 * cap)
    r = _chunked(echo_app, stream)
    assert r.status_code == 413 and r.get_json()["error"] == "payload_too_large", r.get_data(as_text=True)
    assert stream.pulled <= cap + 1  # bounded memory: nothing past the first byte over the cap is read
    for size in (cap // 2 + 1, cap):  # within the cap, the body is read whole
        stream = CountingStream(size)
        r = _chunked(echo_app, stream)
        assert r.status_code == 200 and r.get_json() == {"type": "list"}, r.get_data(as_text=True)
        assert stream.pulled == size


def test_an_error_message_never_carries_nul_surrogates_or_megabytes(app):
    from web.errors import BadRequest
    bp = Blueprint("echo_message_test", __name__)

    @bp.get("/_test/message")
    def message():
        raise BadRequest("unknown: a\x00b \ud800 " + "y" * 1_000_000)

    app.register_blueprint(bp)
    r = app.test_client().get("/_test/message")
    assert r.status_code == 400
    text = r.get_data(as_text=True)
    assert len(text) < 2000 and "\\u0000" in text and "\\\\ud800" in text, text[:300]
