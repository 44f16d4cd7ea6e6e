"""The engine's exporter, run in-process against the test database: column types and the union schema,
deletes shipped as rows, incremental ranges, byte-identical reruns, the column cap, hostile keys; every
file read back with polars and DuckDB."""
from __future__ import annotations

import time
import uuid

import duckdb
import polars as pl
import pytest
from sqlalchemy import text

from models import exports as store
from models.db import session_scope
from models.engine import Incoming, apply_chunk, current_version
from models.users import ensure_tenant
from workers.exports import ENGINE_LAYOUT, SpecError, confine_target, export_files, parse_cron, parse_spec

NS = "synkronus"


@pytest.fixture
def tenant(real_sessions):
    name = f"t-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as session:
        ensure_tenant(session, name)
    return name


def put(sessions, tenant, records, namespace=NS):
    with session_scope(sessions) as session:
        apply_chunk(session, tenant_id=tenant, namespace=namespace, records=[
            Incoming(position=i, key=r["key"], record_type=r.get("type", "survey"), data=r.get("data"),
                     deleted=r.get("deleted", False), created_at=r.get("created_at"))
            for i, r in enumerate(records)])
        return current_version(session, tenant)


def run(sessions, tenant, out, *, since=0, until=None, partition_by=("record_type",), max_columns=1000,
        previous=None, row_group_rows=1000, namespace=NS):
    with session_scope(sessions) as session:
        until = current_version(session, tenant) if until is None else until
    scope = store.Scope(tenant_id=tenant, namespace=namespace, since=since, until=until)
    out.mkdir(parents=True, exist_ok=True)
    return export_files(sessions, scope, ENGINE_LAYOUT, list(partition_by), out, max_columns=max_columns,
                        row_group_rows=row_group_rows, previous=previous)


def read_both(path):
    frame = pl.read_parquet(path)
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    assert len(rows) == frame.height
    assert [d[0] for d in con.description] == frame.columns
    return frame, rows


def test_types_union_schema_and_deletes(real_sessions, tenant, tmp_path):
    put(real_sessions, tenant, [
        {"key": "a", "data": {"n": 1, "flag": True, "s": "x", "nest": {"b": [1, 2]}, "mix": 1}},
        {"key": "b", "data": {"n": 2.5, "flag": False, "s": "y", "mix": "two", "later": "v2"}},
        {"key": "c", "data": {"n": None, "s": None}},
        {"key": "z", "type": "other", "data": {"q": 1}},
    ])
    put(real_sessions, tenant, [{"key": "c", "data": {"n": None}, "deleted": True}])
    result = run(real_sessions, tenant, tmp_path)
    assert [f["path"] for f in result["files"]] == ["other.parquet", "survey.parquet"]
    frame, rows = read_both(tmp_path / "survey.parquet")
    assert frame.columns == ["_key", "_type", "_schema_version", "_version", "_deleted", "_created_at",
                             "_updated_at", "_geolocation", "data_flag", "data_later", "data_mix", "data_n",
                             "data_nest", "data_s"]
    schema = dict(frame.schema)
    assert schema["data_n"] == pl.Float64 and schema["data_flag"] == pl.Boolean
    assert schema["data_mix"] == pl.Utf8 and schema["data_nest"] == pl.Utf8
    assert schema["_created_at"] == pl.Datetime("us", "UTC") and schema["_version"] == pl.Int64
    by_key = {r["_key"]: r for r in frame.to_dicts()}
    assert by_key["a"]["data_n"] == 1.0 and by_key["b"]["data_n"] == 2.5
    assert by_key["a"]["data_mix"] == "1" and by_key["b"]["data_mix"] == "two"
    assert by_key["a"]["data_nest"] == '{"b": [1, 2]}'
    assert by_key["a"]["data_later"] is None and by_key["b"]["data_later"] == "v2"
    assert by_key["c"]["_deleted"] is True and by_key["c"]["data_n"] is None
    assert [r["_version"] for r in frame.to_dicts()] == sorted(r["_version"] for r in frame.to_dicts())


def test_incremental_run_holds_exactly_the_changes(real_sessions, tenant, tmp_path):
    first_until = put(real_sessions, tenant, [{"key": f"k{i}", "data": {"i": i}} for i in range(50)])
    first = run(real_sessions, tenant, tmp_path / "1")
    assert first["rows"] == 50
    put(real_sessions, tenant, [{"key": "new", "data": {"i": 100}}])
    put(real_sessions, tenant, [{"key": "k3", "data": {"i": 333}}])
    put(real_sessions, tenant, [{"key": "k7", "data": {"i": 7}, "deleted": True}])
    second = run(real_sessions, tenant, tmp_path / "2", since=first_until)
    frame, _ = read_both(tmp_path / "2" / "survey.parquet")
    got = {r["_key"]: (r["_deleted"], r["data_i"]) for r in frame.to_dicts()}
    assert got == {"new": (False, 100.0), "k3": (False, 333.0), "k7": (True, 7.0)}
    assert second["rows"] == 3


def test_a_rerun_of_the_same_range_is_byte_identical(real_sessions, tenant, tmp_path):
    until = put(real_sessions, tenant, [{"key": f"k{i}", "type": f"t{i % 3}", "data": {"i": i, "s": "é" * (i % 5)}}
                                        for i in range(2500)])
    one = run(real_sessions, tenant, tmp_path / "1", until=until, row_group_rows=700)
    put(real_sessions, tenant, [{"key": "later", "data": {"i": 1}}])
    two = run(real_sessions, tenant, tmp_path / "2", until=until, row_group_rows=700)
    assert [(f["path"], f["sha256"]) for f in one["files"]] == [(f["path"], f["sha256"]) for f in two["files"]]
    for f in one["files"]:
        assert (tmp_path / "1" / f["path"]).read_bytes() == (tmp_path / "2" / f["path"]).read_bytes()
        frame, _ = read_both(tmp_path / "1" / f["path"])
        assert frame.height == f["rows"]


def test_only_columns_of_few_distinct_values_are_dictionary_encoded(real_sessions, tenant, tmp_path):
    """Decided from each file's first row group: a column of unique values is written plain, one of a few
    values with a dictionary (in every row group of the file)."""
    import pyarrow.parquet as pq
    put(real_sessions, tenant, [{"key": f"k{i}", "data": {"unique": f"value {i}", "few": f"v{i % 3}",
                                                          "late": "same" if i < 1000 else f"u{i}"}}
                                for i in range(2500)])
    run(real_sessions, tenant, tmp_path, row_group_rows=1000)
    meta = pq.ParquetFile(tmp_path / "survey.parquet").metadata
    assert meta.num_row_groups == 3
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]

    def dictionary(name):
        return {meta.row_group(g).column(names.index(name)).has_dictionary_page for g in range(meta.num_row_groups)}
    assert dictionary("data_few") == {True} and dictionary("_type") == {True}
    assert dictionary("data_unique") == {False} and dictionary("_key") == {False} and dictionary("_version") == {False}
    assert dictionary("data_late") == {True}  # its first row group holds one value
    frame, _ = read_both(tmp_path / "survey.parquet")
    assert frame["data_unique"].n_unique() == 2500 and frame["data_late"][2499] == "u2499"


def test_a_file_that_cannot_be_written_stops_the_copies_started_ahead(real_sessions, tenant, tmp_path):
    """Each file's COPY starts while the one before it is written: when a file fails, the copies already
    under way end with it (none left streaming or holding its snapshot open), and the next export runs."""
    until = put(real_sessions, tenant, [{"key": f"k{i}", "type": f"t{i % 3}", "data": {"i": i}} for i in range(3000)])
    out = tmp_path / "failing"
    (out / "t0.parquet").mkdir(parents=True)  # the first file's path is taken by a directory
    with pytest.raises(OSError):
        run(real_sessions, tenant, out, until=until)

    def lingering():
        with session_scope(real_sessions) as session:
            return session.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%' OR query LIKE 'COPY%')"
                " AND state <> 'idle'")).scalar_one()
    deadline = time.monotonic() + 10
    while lingering() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lingering() == 0
    done = run(real_sessions, tenant, tmp_path / "again", until=until)
    assert [f["path"] for f in done["files"]] == ["t0.parquet", "t1.parquet", "t2.parquet"]
    assert done["rows"] == 3000


def test_partition_by_day_and_none(real_sessions, tenant, tmp_path):
    put(real_sessions, tenant, [
        {"key": "a", "data": {"v": 1}, "created_at": "2024-03-01T23:59:59Z"},
        {"key": "b", "data": {"v": 2}, "created_at": "2024-03-02T00:00:00Z"},
        {"key": "c", "type": "x/y", "data": {"w": "s"}, "created_at": "2024-03-02T10:00:00Z"},
    ])
    by_day = run(real_sessions, tenant, tmp_path / "d", partition_by=("record_type", "day"))
    assert [f["path"] for f in by_day["files"]] == ["survey/2024-03-01.parquet", "survey/2024-03-02.parquet",
                                                    "x_y/2024-03-02.parquet"]
    run(real_sessions, tenant, tmp_path / "n", partition_by=())
    frame, _ = read_both(tmp_path / "n" / "records.parquet")
    assert frame.height == 3 and {"data_v", "data_w"} <= set(frame.columns)


def test_hostile_keys_and_the_column_cap(real_sessions, tenant, tmp_path):
    keys = ["it's", 'say "hi"', "a/b", "with space", "ünï©ødé", "%(fk)s", "x\"); DROP TABLE records; --"]
    put(real_sessions, tenant, [{"key": "h", "data": {k: i for i, k in enumerate(keys)}}])
    run(real_sessions, tenant, tmp_path / "h")
    frame, _ = read_both(tmp_path / "h" / "survey.parquet")
    row = frame.to_dicts()[0]
    for i, k in enumerate(keys):
        assert row["data_" + k] == float(i)
    wide = {f"k{i:04d}": i for i in range(5000)}
    put(real_sessions, tenant, [{"key": "w", "type": "wide", "data": wide}])
    result = run(real_sessions, tenant, tmp_path / "w", max_columns=100)
    frame, _ = read_both(tmp_path / "w" / "wide.parquet")
    assert len([c for c in frame.columns if c.startswith("data_k")]) == 100
    import json
    rest = json.loads(frame["data_json"][0])
    assert len(rest) == 4900 and rest["k4999"] == 4999
    assert next(f for f in result["files"] if f["path"] == "wide.parquet")["overflow_keys"] == 4900


def test_a_type_change_between_runs_is_widened(real_sessions, tenant, tmp_path):
    until = put(real_sessions, tenant, [{"key": "a", "data": {"n": 1}}])
    first = run(real_sessions, tenant, tmp_path / "1")
    assert first["schemas"] == {"survey": {"n": "float64"}}
    put(real_sessions, tenant, [{"key": "b", "data": {"n": True}}])
    second = run(real_sessions, tenant, tmp_path / "2", since=until, previous=first["schemas"])
    assert second["widened"] == [{"group": "survey", "column": "data_n", "was": "float64", "found": "bool",
                                  "written": "utf8"}]
    frame, _ = read_both(tmp_path / "2" / "survey.parquet")
    assert frame["data_n"].to_list() == ["true"]


def test_tenants_never_mix(real_sessions, tenant, tmp_path):
    other = f"t-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as session:
        ensure_tenant(session, other)
    put(real_sessions, tenant, [{"key": "mine", "data": {"v": 1}}])
    put(real_sessions, other, [{"key": "theirs", "data": {"v": 2}}])
    result = run(real_sessions, tenant, tmp_path)
    frame, _ = read_both(tmp_path / "survey.parquet")
    assert frame["_key"].to_list() == ["mine"] and result["rows"] == 1


def test_an_empty_range_writes_no_file(real_sessions, tenant, tmp_path):
    assert run(real_sessions, tenant, tmp_path)["files"] == []


def test_spec_cron_and_target_checks(tmp_path):
    assert parse_spec({"namespace": NS}, [NS])["partition_by"] == ["record_type"]
    for bad in ({"namespace": "nope"}, {"namespace": NS, "since_version": -1}, {"namespace": NS, "until": "x"},
                {"namespace": NS, "partition_by": ["week"]}, {"namespace": NS, "record_types": [1]},
                {"namespace": NS, "since_version": 5, "until": 2}, [], {"namespace": NS, "extra": 1}):
        with pytest.raises(SpecError):
            parse_spec(bad, [NS])
    assert parse_cron("0  2 * * *") == "0 2 * * *"
    for bad in ("", "* * *", "61 * * * *", "not a cron at all", 5):
        with pytest.raises(SpecError):
            parse_cron(bad)
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert confine_target(root, "ok/daily") == "ok/daily"
    assert confine_target(root, str(root / "abs")) == "abs"
    for bad in ("../x", "ok/../../x", "/etc", str(tmp_path / "outside"), "link", "link/deeper", "", "a\x00b"):
        with pytest.raises(SpecError):
            confine_target(root, bad)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 1 << 20])
def test_csv_stream_is_cut_at_row_ends_whatever_the_chunk_size(chunk):
    """COPY's CSV is parsed a bounded chunk at a time, cut only between rows: values with quotes, commas
    and newlines, and values longer than a chunk, come out whole and in order."""
    import io
    import random

    import pyarrow as pa

    from workers.exports import _csv_batches
    rng = random.Random(7)
    values = ["a", 'b"c', "x\ny", '"', '""\n""', "", "plain", 'q,"\n\n"', "ü\r\n", "long " * 1000]

    def quoted(value, always):
        return '"' + value.replace('"', '""') + '"' if always or not value.isalnum() else value
    rows, lines = [], []
    for i in range(2000):
        a, b = rng.choice(values), rng.choice(values)
        rows.append((a, b, i))
        lines.append(f"{quoted(a, rng.random() < 0.5)},{quoted(b, True)},{i}\n")
    stream = io.BufferedReader(io.BytesIO("".join(lines).encode()))
    batches = list(_csv_batches(stream, ["c0", "c1", "c2"], ["utf8", "utf8", "int64"], chunk_bytes=chunk))
    table = pa.Table.from_batches(batches)
    assert list(zip(*(table[c].to_pylist() for c in ("c0", "c1", "c2")))) == rows
