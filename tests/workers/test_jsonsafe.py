import orjson
import pytest

from workers.jsonsafe import (MAX_DEPTH, MAX_KEY, BadConstant, BigNumber, JsonError, find_unstorable, loads,
                              storable_json)


def test_nan_becomes_a_marker():
    value = loads(b'{"a": NaN, "b": [Infinity]}')
    assert isinstance(value["a"], BadConstant) and isinstance(value["b"][0], BadConstant)


def test_errors_are_classified():
    with pytest.raises(JsonError) as e:
        loads(b"\xff\xfe")
    assert e.value.kind == "malformed"
    with pytest.raises(JsonError) as e:
        loads("[" * 50_000 + "]" * 50_000)
    assert e.value.kind == "too_deep"


def test_find_unstorable():
    assert find_unstorable({"a": {"b": [1, "ok"]}}, max_string=10) is None
    assert find_unstorable({"a": {"b": ["x\x00"]}}, max_string=10)[:1] == ("nul_character",)
    assert find_unstorable({"a": "y" * 11}, max_string=10) == ("string_too_long", "text longer than 10 characters", "a")
    assert find_unstorable({"n": loads("[NaN]")}, max_string=10)[0] == "invalid_number"
    deep = cur = {}
    for _ in range(70):
        cur["k"] = {}
        cur = cur["k"]
    assert find_unstorable(deep, max_string=10)[0] == "too_deep"


# --- values PostgreSQL cannot store, caught per record ---------------------------------------------

def _new(name):
    import workers.jsonsafe
    return getattr(workers.jsonsafe, name)


def _deep(levels):
    root = cur = {}
    for _ in range(levels):
        cur["k"] = {}
        cur = cur["k"]
    return root


def test_lone_surrogates_in_values_and_keys_are_found():
    value = loads(b'{"a": ["ok", "x\\ud800y"]}')
    assert find_unstorable(value, max_string=100) == (
        "lone_surrogate", "text contains a lone UTF-16 surrogate (not valid Unicode)", "a[1]")
    code, message, path = find_unstorable(loads(b'{"a": {"\\udfff": 1}}'), max_string=100)
    assert (code, path) == ("lone_surrogate", "a") and message.startswith("a key")
    assert find_unstorable(loads(b'{"a": "\\ud83d\\ude00"}'), max_string=100) is None  # a proper pair


def test_nul_in_a_key_is_found():
    assert find_unstorable({"a": {"b\x00": 1}}, max_string=100)[0] == "nul_character"


def test_numbers_beyond_what_is_kept_are_found():
    raw = b'{"n": ' + b"9" * 5000 + b', "f": 1e400, "ok": 12345678901234567890123}'
    value = loads(raw)  # no ValueError from int()'s 4,300-digit limit
    big = _new("BigNumber")
    assert isinstance(value["n"], big) and isinstance(value["f"], big)
    assert value["ok"] == 1.2345678901234568e22  # as the fast parser reads it
    assert find_unstorable(value, max_string=100)[0::2] in (("number_too_large", "n"), ("number_too_large", "f"))
    assert find_unstorable({"a": [float("inf")]}, max_string=10)[0] == "number_too_large"
    assert find_unstorable({"a": 2 ** 70}, max_string=10) == (
        "number_too_large", "an integer beyond 64 bits cannot be stored exactly", "a")
    assert find_unstorable({"a": -(2 ** 63), "b": 2 ** 64 - 1, "c": 1.5e308, "d": True}, max_string=10) is None
    assert find_unstorable(loads(b"[-" + b"1" * 401 + b"]"), max_string=10)[0] == "number_too_large"


def test_depth_and_key_length_limits():
    assert find_unstorable(_deep(64), max_string=10) is None
    assert find_unstorable(_deep(65), max_string=10)[0] == "too_deep"
    assert find_unstorable(_deep(1000), max_string=10)[0] == "too_deep"  # no recursion
    assert find_unstorable(loads(b"[" * 1000 + b"]" * 1000), max_string=10)[0] == "too_deep"
    assert find_unstorable({"k" * 1024: 1}, max_string=10) is None
    assert find_unstorable({"k" * 1025: 1}, max_string=10)[0] == "key_too_long"
    assert find_unstorable({"k" * 20: 1}, max_string=10, max_key=10)[0] == "key_too_long"


def test_find_bad_text_for_indexed_columns():
    find_bad_text = _new("find_bad_text")
    assert find_bad_text("survey", max_bytes=256) is None
    assert find_bad_text("é" * 128, max_bytes=256) is None
    assert find_bad_text("é" * 129, max_bytes=256) == ("text_too_long", "longer than 256 bytes")
    assert find_bad_text("t" * 20_000, max_bytes=256)[0] == "text_too_long"
    assert find_bad_text("a\x00", max_bytes=256)[0] == "nul_character"
    assert find_bad_text(loads(b'"\\ud800"'), max_bytes=256)[0] == "lone_surrogate"


def test_storable_and_as_text_never_fail():
    import orjson
    storable, as_text = _new("storable"), _new("as_text")
    hostile = {"nul": "a\x00", "sur": loads(b'"\\ud800"'), loads(b'"\\udc00"'): 1, "big": 2 ** 80,
               "marker": loads(b"[1e400]")[0], "deep": _deep(1000), "nan": loads(b"[NaN]")[0]}
    clean = storable(hostile)
    text = orjson.dumps(clean).decode()  # orjson refuses surrogates, big ints and depth > 255
    assert "\x00" not in text and "\\u0000" not in text.replace("\\\\u0000", "")
    assert clean["big"] == str(2 ** 80) and clean["nul"] == "a\\u0000"
    assert as_text(hostile, cap=500) and len(as_text(hostile, cap=500)) <= 500
    assert as_text(_deep(2000))


def test_lone_surrogate_escapes_are_seen_across_block_boundaries():
    import io
    from workers.jsonsafe import has_lone_surrogate_escape
    pair, high, low = b"\\ud83d\\ude00", b"\\ud800", b"\\ude00"
    for size in (1, 2, 5, 7, 13, 64):
        for pad in range(0, 24):
            def seen(raw):
                return has_lone_surrogate_escape(io.BytesIO(b"x" * pad + raw), block_size=size)
            assert not seen(pair + b"y" + pair) and not seen(b'"\\u0041"')
            assert seen(pair + high) and seen(high + b"y") and seen(low) and seen(high + b"\\u0041")


def _nested(levels: int):
    value: object = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


STORABLE_CASES = [
    {"name": "Ama", "age": 31, "tags": ["a", "b"], "nested": {"x": 1.5, "ok": True}},
    {"b": 1, "a": {"d": [1, 2, {"c": "é"}], "c": "ünïcode ☃"}},
    {"text": "back\\u0000slash", "k": "nullable"},            # walks (looks like NUL / null), still clean
    {"n": None}, {"deep": _nested(MAX_DEPTH - 2)}, {"big": 2 ** 63}, {"neg": -(2 ** 63)},
    {"k" * (MAX_KEY + 1): 1}, {"s": "x" * 300}, {"nul": "a\x00b"}, {"nul\x00key": 1},
    {"surrogate": "a\ud800b"}, {"inf": float("inf")}, {"huge": 2 ** 70}, {"deeper": _nested(MAX_DEPTH + 5)},
    {"nan": BadConstant("NaN")}, {"bignum": BigNumber("1e400")}, [{"in": "a list"}],
]


@pytest.mark.parametrize("value", STORABLE_CASES, ids=range(len(STORABLE_CASES)))
def test_storable_json_only_vouches_for_what_the_walk_finds_clean(value):
    text = storable_json(value, max_string=200)
    found = find_unstorable(value, max_string=200)
    if text is not None:
        assert found is None
        assert text == orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def test_storable_json_vouches_for_plain_records_and_refuses_each_hostile_one():
    assert storable_json(STORABLE_CASES[0], max_string=200) is not None
    assert storable_json({"k": "v" * 150}, max_string=200) is not None
    for hostile in ({"nul": "a\x00b"}, {"surrogate": "a\ud800b"}, {"inf": float("inf")}, {"huge": 2 ** 70},
                    {"deeper": _nested(MAX_DEPTH + 5)}, {"nan": BadConstant("NaN")}, {"k" * (MAX_KEY + 1): 1},
                    {"s": "x" * 300}):
        assert storable_json(hostile, max_string=1 << 20 if "k" * (MAX_KEY + 1) in hostile else 200) is None
