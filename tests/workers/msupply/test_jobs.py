"""mSupply push parsing rules (pure functions) and routing configuration."""
import json

from models.msupply import store as msupply
from models.engine import Incoming
from workers.msupply import jobs as msupply_jobs
from workers.apply import Rejected
from workers.msupply.jobs import parse_record


def test_insert_update_keep_data_and_the_store():
    rec = parse_record(3, {"SyncID": "S", "RecordType": "item", "RecordID": "I1", "SyncType": "U", "StoreID": "A",
                           "Data": {"ID": "I1"}})
    assert isinstance(rec, Incoming) and rec.key == "item:I1" and rec.data == {"ID": "I1"}
    assert rec.meta == {"store_id": "A"} and not rec.deleted and rec.position == 3


def test_lowercase_data_is_accepted():
    rec = parse_record(0, {"RecordType": "item", "RecordID": "I1", "SyncType": "I", "data": {"ID": "I1"}})
    assert isinstance(rec, Incoming) and rec.data == {"ID": "I1"}


def test_delete_is_a_tombstone_without_data():
    rec = parse_record(0, {"RecordType": "item", "RecordID": "I1", "SyncType": "D"})
    assert isinstance(rec, Incoming) and rec.deleted and rec.data is None


def test_merge_tombstones_the_removed_id_and_carries_both_ids():
    rec = parse_record(0, {"RecordType": "name", "RecordID": "K", "SyncType": "M", "mergeIDtokeep": "K",
                           "mergeIDtodelete": "D"})
    assert rec.key == "name:D" and rec.deleted
    assert rec.meta["sync_type"] == "M" and rec.meta["merge_keep"] == "K" and rec.meta["merge_delete"] == "D"


def test_bad_records_are_rejected_with_stable_codes():
    cases = {
        "not_an_object": 5,
        "invalid_sync_type": {"RecordType": "item", "RecordID": "I", "SyncType": "Z"},
        "missing_record_type": {"RecordID": "I", "SyncType": "I", "Data": {}},
        "missing_record_id": {"RecordType": "item", "SyncType": "I", "Data": {}},
        "missing_data": {"RecordType": "item", "RecordID": "I", "SyncType": "I"},
        "invalid_merge": {"RecordType": "name", "RecordID": "K", "SyncType": "M", "mergeIDtokeep": "K"},
        "unknown_table": {"_v1_unknown_table": 99, "SyncType": "I"},
        "key_too_long": {"RecordType": "item", "RecordID": "x" * 600, "SyncType": "I", "Data": {}},
    }
    for code, raw in cases.items():
        rec = parse_record(1, raw)
        assert isinstance(rec, Rejected) and rec.code == code, (code, rec)
        assert rec.record is not None


def test_routing_file_overrides_the_defaults(tmp_path, settings):
    path = tmp_path / "routing.json"
    path.write_text(json.dumps({"routes": {"item": {"mode": "none"}}, "mobile_types": ["item"]}))
    configured = settings.replace(options={"msupply": {"routing_file": str(path)}})
    assert msupply_jobs.routing(configured).routes["item"].mode == "none"
    assert msupply_jobs.routing(configured).routes["name"].mode == "all"
    assert msupply_jobs.routing(configured).mobile_types == ("item",)
    assert msupply_jobs.routing(settings) is msupply.DEFAULT_ROUTING  # other deployments keep the defaults


def test_values_postgres_cannot_store_reject_only_their_record():
    from workers.jsonsafe import loads

    def rec(**over):
        return {"SyncID": "S1", "RecordType": "item", "RecordID": "I1", "SyncType": "I", "StoreID": "A",
                "Data": {"code": "x"}, **over}
    cases = {
        "nul_character": [rec(Data={"code": "a\x00"}), rec(SyncID="s\x00"), rec(RecordID="I\x00"),
                          rec(StoreID="A\x00"), rec(Data={"k\x00": 1})],
        "lone_surrogate": [rec(Data={"code": loads(b'"\\ud800"')}), rec(RecordID=loads(b'"\\udfff"'))],
        "number_too_large": [rec(Data=loads(b'{"n": ' + b"9" * 5000 + b"}"))],
        "too_deep": [rec(Data=loads(b'{"a": ' + b"[" * 999 + b"]" * 999 + b"}"))],
        "record_type_too_long": [rec(RecordType="t" * 300)],
        "invalid_sync_id": [rec(SyncID="s" * 20_000)],
        "key_too_long": [rec(RecordID="é" * 300)],
    }
    for code, raws in cases.items():
        for raw in raws:
            item = parse_record(1, raw)
            assert isinstance(item, Rejected) and item.code == code, (code, item)
            assert item.record and "\x00" not in item.message


def _pushed(data, **envelope):
    return {"SyncID": "S", "RecordType": "item", "RecordID": "I1", "SyncType": "U", "StoreID": "A", "Data": data,
            **envelope}


def test_a_plain_record_carries_its_data_text_as_the_engine_writes_it():
    from models.engine import _dumps
    rec = parse_record(0, _pushed({"b": 1.5, "a": [1, {"c": "é"}], "ID": "I1"}))
    assert isinstance(rec, Incoming) and rec.data_text == _dumps(rec.data)


def test_what_the_quick_check_cannot_vouch_for_is_still_found():
    """Every value PostgreSQL cannot store is rejected with the walk's code, in Data or in the envelope,
    however the quick check is fooled (orjson writes inf and nan as null)."""
    deep = "x"
    for _ in range(70):
        deep = [deep]
    cases = [
        (_pushed({"q": float("inf")}), "number_too_large"),
        (_pushed({"q": float("nan")}), "number_too_large"),
        (_pushed({"q": [1, float("-inf")]}), "number_too_large"),
        (_pushed({"k" * 1025: 1}), "key_too_long"),
        (_pushed({"n": {"k" * 1025: 1}}), "key_too_long"),
        (_pushed({"ID": "I1"}, **{"x" * 1025: "y"}), "key_too_long"),
        (_pushed({"s": "a\x00b"}), "nul_character"),
        (_pushed({"s\x00": "b"}), "nul_character"),
        (_pushed({"ID": "I1"}, Note="a\x00b"), "nul_character"),
        (_pushed({"s": "\ud800"}), "lone_surrogate"),
        (_pushed({"\udc00": "s"}), "lone_surrogate"),
        (_pushed({"d": deep}), "too_deep"),
        (_pushed({"i": 2 ** 64}), "number_too_large"),
    ]
    for raw, code in cases:
        rec = parse_record(0, raw)
        assert isinstance(rec, Rejected) and rec.code == code, (raw if code != "too_deep" else code, rec)


def test_a_null_or_an_escaped_backslash_only_takes_the_slow_path():
    rec = parse_record(0, _pushed({"n": None, "s": "\\u0000 is text"}))
    assert isinstance(rec, Incoming) and rec.data == {"n": None, "s": "\\u0000 is text"}
