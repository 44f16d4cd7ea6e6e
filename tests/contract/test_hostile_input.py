"""Hostile input is normal input: a table of hostile values (NUL, a lone surrogate as a JSON escape in the
raw bytes, 2^63, a 5,000-digit integer, a string longer than any field takes, wrong types, 1,000-deep
nesting) put in every place each dialect's endpoints take a value from (tests/contract/adapters/*:
`hostile_targets`). Every combination answers below 500; a request field holding one is a 4xx in the
dialect's own envelope, with no exception or driver text and without repeating the value; a value inside
one record of a batch leaves the batch accepted (the pipeline rejects that record)."""
from __future__ import annotations

import pytest

from tests.contract.adapters import ADAPTERS
from tests.contract.adapters.base import HOSTILE, json_body, show

by_dialect = pytest.mark.parametrize("adapter", ADAPTERS, ids=[a.name for a in ADAPTERS])

ECHO = "x" * 200  # a piece of the long value: an error must not repeat request data


def assert_fieldsync_envelope(response, status):
    assert response.status_code == status, show(response)
    body = json_body(response)
    assert isinstance(body, dict), f"not a JSON object: {show(response)}"
    for key in ("error", "message"):
        assert isinstance(body.get(key), str) and body[key], f"no {key!r} text: {show(response)}"


def _check(adapter, target, hostile, response):
    status = response.status_code
    assert status < 500, f"a 5xx: {show(response)}"
    expect = target.expect if hostile.name in target.only else "any"
    if expect == "refuse":
        assert 400 <= status < 500, f"expected a 4xx: {show(response)}"
    elif expect == "keep":
        assert 200 <= status < 300, f"the batch must be kept (its record rejected later): {show(response)}"
    if status >= 400:
        if target.envelope == "fieldsync":
            assert_fieldsync_envelope(response, status)
        else:
            adapter.assert_error_envelope(response, status)
        adapter.assert_no_exception_text(response)
        text = response.get_data(as_text=True)
        assert ECHO not in text and len(text) < 5000, f"the error repeats request data: {show(response)}"


@by_dialect
def test_hostile_values_in_every_field_answer_a_4xx_in_the_dialects_envelope(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    targets = adapter.hostile_targets(env, creds)
    assert targets, "the adapter names no place a request carries a value"
    failures, sent = [], 0
    for target in targets:
        for hostile in HOSTILE:
            req = target.build(hostile)
            if req is None:
                continue
            sent += 1
            try:
                _check(adapter, target, hostile, req.send(env.client))
            except AssertionError as exc:
                failures.append(f"[{target.label} <- {hostile.name}] {str(exc)[:600]}")
    assert sent >= len(targets)
    assert not failures, f"{len(failures)} of {sent} requests:\n" + "\n".join(failures)
