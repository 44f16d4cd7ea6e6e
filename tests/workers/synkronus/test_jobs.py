"""The Synkronus push pipeline's per-record validation: each bad observation is a failed record with a
stable code, never a failed batch."""
import pytest

from models.engine import Incoming
from workers.apply import Rejected
from workers.jsonsafe import loads_checked
from workers.synkronus.jobs import validate

GOOD = {"observation_id": "obs-1", "form_type": "survey", "form_version": "1", "data": {"q": "yes"},
        "created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-01-15T10:30:00Z", "deleted": False,
        "geolocation": {"latitude": 1.5, "longitude": 2.5}}


@pytest.mark.parametrize("clean", [True, False])
def test_a_good_record_becomes_an_engine_record(clean):
    item, warning = validate(3, dict(GOOD), clean=clean)
    assert isinstance(item, Incoming) and warning is None
    assert (item.position, item.key, item.record_type, item.schema_version) == (3, "obs-1", "survey", "1")
    assert item.geolocation == {"latitude": 1.5, "longitude": 2.5}


@pytest.mark.parametrize("change, code, path", [
    ({"observation_id": ""}, "missing_observation_id", "observation_id"),
    ({"observation_id": "x" * 600}, "invalid_observation_id", "observation_id"),
    ({"data": []}, "invalid_type", "data"),
    ({"form_type": 5}, "invalid_type", "form_type"),
    ({"deleted": "no"}, "invalid_type", "deleted"),
    ({"created_at": "yesterday"}, "invalid_timestamp", "created_at"),
    ({"geolocation": {"latitude": 91, "longitude": 0}}, "invalid_geolocation", "geolocation"),
    ({"geolocation": {"longitude": 0}}, "invalid_geolocation", "geolocation"),
    ({"data": {"q": "a\x00b"}}, "nul_character", "data.q"),
])
def test_each_bad_field_has_its_code(change, code, path):
    item, warning = validate(0, {**GOOD, **change}, clean=True)
    assert isinstance(item, Rejected) and warning is None
    assert (item.code, item.path) == (code, path)
    assert item.record is not None


def test_nan_from_the_slow_parser_is_a_bad_record():
    body, clean = loads_checked(b'{"records": [{"observation_id": "o", "data": {"v": NaN}}]}')
    assert not clean
    item, _ = validate(0, body["records"][0], clean=clean)
    assert isinstance(item, Rejected) and item.code == "invalid_number"


def test_a_record_without_form_type_is_kept_with_a_warning():
    item, warning = validate(0, {**GOOD, "form_type": ""}, clean=True)
    assert isinstance(item, Incoming) and item.record_type == ""
    assert warning["code"] == "MISSING_FORM_TYPE" and warning["severity"] == "warning"


HOSTILE = [  # (raw record JSON, code, path): values PostgreSQL cannot store, each only its record's problem
    (b'{"observation_id": "o", "data": {"q": "\\ud800"}}', "lone_surrogate", "data.q"),
    (b'{"observation_id": "o\\udc00", "data": {}}', "lone_surrogate", "observation_id"),
    (b'{"observation_id": "o", "form_type": "\\ud800", "data": {}}', "lone_surrogate", "form_type"),
    (b'{"observation_id": "o", "data": {"\\ud800": 1}}', "lone_surrogate", "data"),
    (b'{"observation_id": "o", "data": {"n": ' + b"9" * 5000 + b"}}", "number_too_large", "data.n"),
    (b'{"observation_id": "o", "data": {"a": ' + b"[" * 999 + b"]" * 999 + b"}}", "too_deep", None),
    (b'{"observation_id": "o", "data": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}", "too_deep", None),
    (b'{"observation_id": "o", "form_type": "' + b"t" * 20_000 + b'", "data": {}}', "invalid_form_type", "form_type"),
    (b'{"observation_id": "' + "é".encode() * 300 + b'", "data": {}}', "invalid_observation_id", "observation_id"),
    # fields beside data: looked at through their serialised text first, then walked when it shows a problem
    (b'{"observation_id": "o", "form_version": "a\\u0000b", "data": {}}', "nul_character", "form_version"),
    (b'{"observation_id": "o", "extra": {"k\\u0000": 1}, "data": {}}', "nul_character", "extra"),
    (b'{"observation_id": "o", "extra": ' + b"[" * 100 + b"]" * 100 + b', "data": {}}', "too_deep", None),
    (b'{"observation_id": "o", "extra": ' + b"[" * 300 + b"]" * 300 + b', "data": {}}', "too_deep", None),
    (b'{"observation_id": "o", "extra": "' + b"x" * 300_000 + b'", "data": {}}', "string_too_long", "extra"),
]


@pytest.mark.parametrize("raw, code, path", HOSTILE)
def test_values_postgres_cannot_store_reject_only_their_record(raw, code, path):
    record, clean = loads_checked(raw)
    item, _ = validate(0, record, clean=clean)
    assert isinstance(item, Rejected), item
    assert item.code == code and (path is None or item.path == path), (item.code, item.path)
    assert item.record  # the input, as text, whatever it holds
