"""Synkronus GET /dataexport/parquet end to end (real worker process): each rule of the spec's
"Parquet export" section as its own test, every file read with polars and DuckDB."""
from __future__ import annotations

import io
import uuid
import zipfile

import duckdb
import polars as pl
import pytest

from models.db import session_scope
from tests.factories import bearer, make_user

LONG = "L" * 150
ODD = 'a/b\\c:d*e?f"g<h>i|j'


def obs(oid, form_type, data, created, **kw):
    record = {"observation_id": oid, "form_type": form_type, "form_version": "2", "data": data,
              "created_at": created, "updated_at": created, "deleted": False}
    record.update(kw)
    return record


RECORDS = [
    obs("s3", "survey", {"num": 2.5, "flag": False, "text": "c", "mixnull": None, "mixed": True,
                         "nested": {"a": {"b": 1}}, "arr": [1, "x"], "it's": 3, 'q"k': "dq", "sp ace": 1,
                         "ünï": "u", "only_late": 7}, "2024-01-03T00:00:00Z"),
    obs("s1", "survey", {"num": 1, "flag": True, "text": "a", "mixnull": 5, "mixed": 5, "nested": {"a": 2},
                         "arr": [], "it's": 1, 'q"k': "dq1", "sp ace": 0, "ünï": "v"}, "2024-01-01T00:00:00Z",
        geolocation={"latitude": 1.5, "longitude": 2.5, "accuracy": 3}),
    obs("s2", "survey", {"num": -3, "flag": True, "text": "b", "mixed": "x", "it's": 2},
        "2024-01-02T00:00:00Z", synced_at="2024-01-02T05:00:00Z"),
    obs("o1", ODD, {"v": 1}, "2024-01-01T00:00:00Z"),
    obs("l1", LONG, {"v": 1}, "2024-01-01T00:00:00Z"),
    obs("h1", "household", {"members": 4}, "2024-01-01T00:00:00Z"),
    obs("h2", "household", {"members": 5}, "2024-01-02T00:00:00Z"),
    obs("gone", "zeta", {"v": 1}, "2024-01-01T00:00:00Z"),
]


@pytest.fixture(scope="module")
def exported(live_worker, settings, real_sessions, tmp_path_factory):
    from web.app import create_app
    from workers.app import make_celery
    from workers.runtime import Runtime
    celery = make_celery(settings, Runtime(settings, real_sessions))
    app = create_app(settings, session_factory=real_sessions, celery_app=celery)
    app.testing = True
    tenant = f"sx-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        writer = make_user(s, role="read-write", tenant=tenant)
        analyst = make_user(s, role="analyst", tenant=tenant)
        reader = make_user(s, role="read-only", tenant=tenant)
        empty = make_user(s, role="read-only", tenant=f"sx-empty-{uuid.uuid4().hex[:6]}")
    client = app.test_client()
    h = bearer(app, writer)
    r = client.post("/sync/push", json={"transmission_id": uuid.uuid4().hex, "client_id": "c", "records": RECORDS},
                    headers=h)
    assert r.status_code == 200 and r.get_json()["success_count"] == len(RECORDS), r.data
    gone = dict(RECORDS[-1], deleted=True, updated_at="2024-02-01T00:00:00Z")
    deleted_survey = obs("s9", "survey", {"num": "not a number"}, "2024-01-04T00:00:00Z", deleted=True)
    r = client.post("/sync/push", json={"transmission_id": uuid.uuid4().hex, "client_id": "c",
                                        "records": [gone, deleted_survey]}, headers=h)
    assert r.status_code == 200, r.data
    answer = client.get("/dataexport/parquet", headers=bearer(app, reader))
    assert answer.status_code == 200, answer.data
    assert answer.mimetype == "application/zip"
    directory = tmp_path_factory.mktemp("synkronus-export")
    archive = zipfile.ZipFile(io.BytesIO(answer.data))
    frames = {}
    for name in archive.namelist():
        path = directory / name
        path.write_bytes(archive.read(name))
        frame = pl.read_parquet(path)
        rows = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        assert len(rows) == frame.height
        frames[name] = (frame, rows)
    return {"app": app, "client": client, "names": archive.namelist(), "frames": frames, "analyst": analyst,
            "empty": empty, "reader": reader, "zip": answer.data}


def test_one_file_per_live_form_type_in_alphabetical_order(exported):
    assert exported["names"] == sorted(exported["names"])
    assert "survey.parquet" in exported["names"] and "household.parquet" in exported["names"]
    assert "zeta.parquet" not in exported["names"]  # only deleted rows: no file


def test_file_names_are_sanitised_and_cut(exported):
    assert "a_b_c_d_e_f_g_h_i_j.parquet" in exported["names"]
    assert ("L" * 100 + ".parquet") in exported["names"]
    assert len(exported["names"]) == 4


FIXED = ["observation_id", "form_type", "form_version", "created_at", "updated_at", "synced_at", "deleted",
         "version", "geolocation"]


def test_fixed_columns_in_order_with_their_types(exported):
    frame, _ = exported["frames"]["household.parquet"]
    assert frame.columns == FIXED + ["data_members"]
    schema = dict(frame.schema)
    assert all(schema[c] == pl.Utf8 for c in FIXED if c not in ("deleted", "version"))
    assert schema["deleted"] == pl.Boolean and schema["version"] == pl.Int64
    row = frame.to_dicts()[0]
    assert row["created_at"] == "2024-01-01T00:00:00Z" and row["form_version"] == "2"


def test_data_keys_flattened_sorted_after_the_fixed_columns(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    data = frame.columns[len(FIXED):]
    assert data == sorted(data)
    assert set(data) == {"data_arr", "data_flag", "data_it's", "data_mixed", "data_mixnull", "data_nested",
                         "data_num", "data_only_late", 'data_q"k', "data_sp ace", "data_text", "data_ünï"}


def test_numbers_only_is_float64_with_real_values(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame.schema["data_num"] == pl.Float64
    assert frame["data_num"].to_list() == [1.0, -3.0, 2.5]
    household, rows = exported["frames"]["household.parquet"]
    assert household["data_members"].to_list() == [4.0, 5.0]
    assert [r[-1] for r in rows] == [4.0, 5.0]  # DuckDB reads the same values


def test_booleans_only_is_bool(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame.schema["data_flag"] == pl.Boolean
    assert frame["data_flag"].to_list() == [True, True, False]


def test_a_mixture_is_utf8_with_json_text_for_non_strings(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame.schema["data_mixed"] == pl.Utf8
    assert frame["data_mixed"].to_list() == ["5", "x", "true"]


def test_numbers_and_nulls_is_utf8_and_null_is_null(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame.schema["data_mixnull"] == pl.Utf8
    assert frame["data_mixnull"].to_list() == ["5", None, None]  # 5, missing key, JSON null


def test_a_missing_key_is_null(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame["data_only_late"].to_list() == [None, None, 7.0]


def test_nested_values_are_json_text(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame.schema["data_nested"] == pl.Utf8 and frame.schema["data_arr"] == pl.Utf8
    import json
    assert [json.loads(v) if v else v for v in frame["data_nested"].to_list()] == [{"a": 2}, None, {"a": {"b": 1}}]
    assert [json.loads(v) if v else v for v in frame["data_arr"].to_list()] == [[], None, [1, "x"]]


def test_keys_with_quotes_spaces_and_unicode_are_safe(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame["data_it's"].to_list() == [1.0, 2.0, 3.0]
    assert frame['data_q"k'].to_list() == ["dq1", None, "dq"]
    assert frame["data_ünï"].to_list() == ["v", None, "u"]


def test_rows_by_created_at_and_deleted_rows_left_out(exported):
    frame, _ = exported["frames"]["survey.parquet"]
    assert frame["observation_id"].to_list() == ["s1", "s2", "s3"]
    assert frame["deleted"].to_list() == [False, False, False]


def test_geolocation_and_synced_at_as_stored(exported):
    import json
    frame, _ = exported["frames"]["survey.parquet"]
    geo = frame["geolocation"].to_list()
    assert json.loads(geo[0]) == {"latitude": 1.5, "longitude": 2.5, "accuracy": 3} and geo[1] is None
    assert frame["synced_at"].to_list()[1] == "2024-01-02T05:00:00Z"


def test_no_data_is_a_valid_empty_zip(exported):
    r = exported["client"].get("/dataexport/parquet", headers=bearer(exported["app"], exported["empty"]))
    assert r.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(r.data)).namelist() == []


def test_any_role_may_call_it_and_the_same_data_gives_the_same_zip(exported):
    r = exported["client"].get("/dataexport/parquet", headers=bearer(exported["app"], exported["analyst"]))
    assert r.status_code == 200 and r.data == exported["zip"]
    assert exported["client"].get("/dataexport/parquet").status_code == 401


def test_past_the_wait_it_answers_202_with_a_status_url(exported, settings, real_sessions):
    from web.app import create_app
    impatient = create_app(settings.replace(sync_wait_seconds=0), session_factory=real_sessions,
                           celery_app=exported["app"].extensions["fieldsync_celery"])
    client = impatient.test_client()
    with session_scope(real_sessions) as s:
        user = make_user(s, role="read-write", tenant=f"sx-wait-{uuid.uuid4().hex[:6]}")
    h = bearer(impatient, user)
    r = client.post("/sync/push", json={"transmission_id": uuid.uuid4().hex, "client_id": "c",
                                        "records": [obs("w1", "w", {"v": 1}, "2024-01-01T00:00:00Z")]}, headers=h)
    from tests.conftest import wait_for
    wait_for(lambda: client.post("/sync/pull", json={"client_id": "c"}, headers=h).get_json()["records"], 30)
    r = client.get("/dataexport/parquet", headers=h)
    assert r.status_code == 202
    if r.status_code == 202:
        url = r.get_json()["status_url"]
        assert r.headers["Location"] == url
        final = wait_for(lambda: (lambda a: a if a.status_code == 200 else None)(client.get(url, headers=h)), 60)
        assert zipfile.ZipFile(io.BytesIO(final.data)).namelist() == ["w.parquet"]
        other = bearer(impatient, exported["reader"])
        assert client.get(url, headers=other).status_code == 404  # another tenant's export
