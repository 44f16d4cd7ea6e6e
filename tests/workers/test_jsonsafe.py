import pytest

from workers.jsonsafe import BadConstant, JsonError, find_unstorable, loads


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
