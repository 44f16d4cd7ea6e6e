"""The engine on real PostgreSQL: set-based apply, duplicates, created_at kept, audit, conflicts,
tombstones in the feed, and versions in commit order under concurrent writers."""
import datetime as dt
import threading
import uuid

from sqlalchemy import text

from models.engine import Incoming, apply_chunk, changes_since, current_version, get_record
from models.kinds import PROBES


def rec(pos, key, data, **kw):
    return Incoming(position=pos, key=key, record_type=kw.pop("record_type", "form_a"), data=data, **kw)


def test_apply_assigns_versions_and_skips_duplicates(db_session):
    t = f"t-{uuid.uuid4().hex[:6]}"
    r1 = apply_chunk(db_session, tenant_id=t, namespace="synkronus", actor="alice", origin="c1",
                     records=[rec(0, "a", {"x": 1}), rec(1, "b", {"x": 2})])
    assert [k for _, k, _ in r1.accepted] == ["a", "b"]
    versions = [v for _, _, v in r1.accepted]
    assert versions == sorted(versions) and versions[0] >= 2
    r2 = apply_chunk(db_session, tenant_id=t, namespace="synkronus", actor="alice", origin="c1",
                     records=[rec(0, "a", {"x": 1}), rec(1, "b", {"x": 3})])
    assert r2.duplicates == [(0, "a")]
    assert [k for _, k, _ in r2.accepted] == ["b"] and r2.accepted[0][2] > max(versions)
    audit = db_session.execute(text("SELECT record_key, old_hash IS NULL AS first FROM record_changes "
                                    "WHERE tenant_id = :t ORDER BY version"), {"t": t}).all()
    assert [(a.record_key, a.first) for a in audit] == [("a", True), ("b", True), ("b", False)]
    assert current_version(db_session, t) >= r2.accepted[0][2]


def test_created_at_is_kept_and_updated_at_is_the_servers(db_session):
    t = f"t-{uuid.uuid4().hex[:6]}"
    first = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    apply_chunk(db_session, tenant_id=t, namespace="n", records=[rec(0, "a", {"v": 1}, created_at=first)])
    apply_chunk(db_session, tenant_id=t, namespace="n",
                records=[rec(0, "a", {"v": 2}, created_at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))])
    row = get_record(db_session, tenant_id=t, namespace="n", key="a")
    assert row.created_at == first
    assert row.updated_at > first and row.data_text == '{"v": 2}'


def test_last_occurrence_in_a_chunk_wins(db_session):
    t = f"t-{uuid.uuid4().hex[:6]}"
    r = apply_chunk(db_session, tenant_id=t, namespace="n",
                    records=[rec(0, "a", {"v": 1}), rec(1, "a", {"v": 2})])
    assert len(r.accepted) == 2
    assert get_record(db_session, tenant_id=t, namespace="n", key="a").data_text == '{"v": 2}'


def test_tombstones_stay_in_the_feed_with_type_filter(db_session):
    t = f"t-{uuid.uuid4().hex[:6]}"
    apply_chunk(db_session, tenant_id=t, namespace="n",
                records=[rec(0, "a", {"v": 1}), rec(1, "b", {"v": 1}, record_type="form_b")])
    apply_chunk(db_session, tenant_id=t, namespace="n", records=[rec(0, "a", {"v": 1}, deleted=True)])
    feed = changes_since(db_session, tenant_id=t, namespace="n", since=0, limit=10)
    assert [(r.record_key, r.deleted) for r in feed] == [("b", False), ("a", True)]
    only_a = changes_since(db_session, tenant_id=t, namespace="n", since=0, limit=10, record_types=["form_a"])
    assert [r.record_key for r in only_a] == ["a"]
    page = changes_since(db_session, tenant_id=t, namespace="n", since=feed[0].version, limit=10)
    assert [r.record_key for r in page] == ["a"]


def test_conflict_keeps_the_losing_version(db_session):
    t = f"t-{uuid.uuid4().hex[:6]}"
    r1 = apply_chunk(db_session, tenant_id=t, namespace="n", origin="c1", records=[rec(0, "a", {"v": 1})])
    seen = r1.accepted[0][2]
    apply_chunk(db_session, tenant_id=t, namespace="n", origin="c2", records=[rec(0, "a", {"v": 2})],
                client_since=seen)
    r3 = apply_chunk(db_session, tenant_id=t, namespace="n", origin="c1", records=[rec(0, "a", {"v": 3})],
                     client_since=seen)
    assert len(r3.conflicts) == 1 and r3.conflicts[0][1] == "a"
    kept = db_session.execute(text("SELECT losing_data, winner_origin FROM record_conflicts WHERE tenant_id = :t"),
                              {"t": t}).one()
    assert kept.losing_data == {"v": 2} and kept.winner_origin == "c1"
    assert get_record(db_session, tenant_id=t, namespace="n", key="a").data_text == '{"v": 3}'


def test_a_pull_never_skips_a_change_that_commits_late(engine):
    """Writer A stages and takes the counter first but holds its commit; writer B must wait, so it can
    never commit a higher version before A's lower one is visible."""
    t = f"t-{uuid.uuid4().hex[:6]}"
    conn_a, conn_b, conn_r = engine.connect(), engine.connect(), engine.connect()
    from sqlalchemy.orm import Session
    sa, sb, sr = Session(bind=conn_a), Session(bind=conn_b), Session(bind=conn_r)
    try:
        from models.engine import ensure_counter
        ensure_counter(sr, t)
        sr.commit()
        apply_chunk(sa, tenant_id=t, namespace="n", records=[rec(0, "a", {"v": 1})])  # A holds the counter
        b_done = threading.Event()

        def writer_b():
            apply_chunk(sb, tenant_id=t, namespace="n", records=[rec(0, "b", {"v": 1})])
            sb.commit()
            b_done.set()

        thread = threading.Thread(target=writer_b)
        thread.start()
        assert not b_done.wait(1.0), "B must wait for A's commit"
        first_pull = changes_since(sr, tenant_id=t, namespace="n", since=0, limit=10)
        cursor = max([r.version for r in first_pull], default=0)
        sr.commit()
        assert first_pull == []
        sa.commit()
        thread.join(10)
        assert b_done.is_set()
        second = changes_since(sr, tenant_id=t, namespace="n", since=cursor, limit=10)
        assert [r.record_key for r in second] == ["a", "b"]
        assert second[0].version < second[1].version
    finally:
        for s in (sa, sb, sr):
            s.close()
        for c in (conn_a, conn_b, conn_r):
            c.close()


def test_index_catch_up_counts_by_deltas_from_the_watermark_and_never_twice(db_session):
    from models import jobs
    from models.index import catch_up, watermark
    from models.users import ensure_tenant
    t = f"t-{uuid.uuid4().hex[:6]}"
    ensure_tenant(db_session, t)

    def job():
        j, _ = jobs.create_job(db_session, tenant_id=t, kind=PROBES["ingest"])
        db_session.flush()
        return j.id

    apply_chunk(db_session, tenant_id=t, namespace="n", job_id=job(),
                records=[rec(0, "a", {"w": "alpha"}), rec(1, "b", {"w": "beta"}), rec(2, "c", {}, record_type="form_b")])
    apply_chunk(db_session, tenant_id=t, namespace="other", job_id=job(), records=[rec(0, "z", {"w": "zeta"})])
    # a batch smaller than what is waiting: the first two changes, then the rest
    first = catch_up(db_session, t, "n", search=True, limit=2)
    assert (first["changes"], first["version"]) == (2, watermark(db_session, t, "n"))
    apply_chunk(db_session, tenant_id=t, namespace="n", job_id=job(),
                records=[rec(0, "a", {"w": "alpha"}, deleted=True), rec(1, "c", {"moved": 1})])
    rest = catch_up(db_session, t, "n", search=True, limit=100)
    assert rest["changes"] == 3
    again = catch_up(db_session, t, "n", search=True, limit=100)
    assert (again["changes"], again["version"]) == (0, rest["version"])
    counts = {r.record_type: (r.live, r.deleted) for r in db_session.execute(
        text("SELECT record_type, live, deleted FROM read_type_counts WHERE tenant_id = :t AND namespace = 'n'"),
        {"t": t})}
    assert counts == {"form_a": (2, 1), "form_b": (0, 0)}
    docs = db_session.execute(text("SELECT record_key FROM read_search_documents WHERE tenant_id = :t "
                                   "ORDER BY record_key"), {"t": t}).scalars().all()
    assert docs == ["b", "c"]
    # the other namespace is untouched until its own run; a namespace nobody searches gets no documents
    assert watermark(db_session, t, "other") == 0
    assert catch_up(db_session, t, "other", search=False, limit=100)["documents"] == 0
    assert db_session.execute(text("SELECT count(*) FROM read_search_documents WHERE tenant_id = :t "
                                   "AND namespace = 'other'"), {"t": t}).scalar() == 0


def test_staging_tables_are_made_again_after_the_transaction_that_made_them_rolled_back(engine):
    from models.db import make_session_factory
    sessions = make_session_factory(engine)
    t = f"t-{uuid.uuid4().hex[:6]}"
    with sessions() as s:  # first use on this connection, rolled back: the temp tables go with it
        apply_chunk(s, tenant_id=t, namespace="n", records=[rec(0, "a", {"v": 1})])
        s.rollback()
    for n in range(3):  # the same pooled connection serves these; each apply finds (or makes) its tables
        with sessions() as s:
            result = apply_chunk(s, tenant_id=t, namespace="n", records=[rec(0, f"k{n}", {"v": n}), rec(1, "a", {"v": 2})])
            s.commit()
        assert len(result.accepted) == 2 if n == 0 else len(result.accepted) == 1
    with sessions() as s:  # two chunks in one transaction: the second does not see the first's rows
        first = apply_chunk(s, tenant_id=t, namespace="n", records=[rec(0, "x", {"v": 1})])
        second = apply_chunk(s, tenant_id=t, namespace="n", records=[rec(0, "y", {"v": 1})])
        s.commit()
    assert [a[1] for a in first.accepted] == ["x"] and [a[1] for a in second.accepted] == ["y"]
    with sessions() as s:
        keys = s.execute(text("SELECT record_key FROM records WHERE tenant_id = :t ORDER BY record_key"),
                         {"t": t}).scalars().all()
    assert keys == ["a", "k0", "k1", "k2", "x", "y"]


def test_rfc3339_rendering_is_utc_with_trimmed_fractions(db_session):
    rendered = db_session.execute(text("""
        SELECT fs_rfc3339(timestamptz '2025-01-01 00:00:00+00'), fs_rfc3339(timestamptz '2025-01-01 10:30:00.5+02'),
               fs_rfc3339(timestamptz '2025-06-30 23:59:59.123456-05')""")).one()
    assert tuple(rendered) == ("2025-01-01T00:00:00Z", "2025-01-01T08:30:00.5Z", "2025-07-01T04:59:59.123456Z")


def test_content_hash_is_the_digest_stored_records_already_carry():
    # A record written before must still be seen as unchanged when the same content comes again: the
    # digest is sha256 over record type, schema version, data, deleted, geolocation and meta (sorted
    # JSON text), each followed by \x1f. Pinned here, and against that definition spelt out.
    import hashlib

    from models.engine import content_hash
    rec = Incoming(position=0, key="k", record_type="household", data={"b": [1, "é\\"], "a": None},
                   deleted=True, schema_version="3", geolocation={"lat": 1.5}, meta={"z": 1, "campaignId": "C"})
    parts = ["household", "3", '{"a":null,"b":[1,"é\\\\"]}', "1", '{"lat":1.5}', '{"campaignId":"C","z":1}']
    spelt_out = hashlib.sha256("".join(p + "\x1f" for p in parts).encode()).hexdigest()
    assert content_hash(rec) == spelt_out == "578909ff9f78fb54da8bcecebf980e214c37f5d3e76dbb390422d3a530065b0e"
    plain = Incoming(position=1, key="k", record_type="", data=None)
    assert content_hash(plain) == hashlib.sha256("\x1f\x1fnull\x1f0\x1fnull\x1f{}\x1f".encode()).hexdigest()


def test_a_chunk_of_new_keys_copied_straight_in_is_stored_as_the_merge_stores_it(db_session):
    # direct=True: the same rows, audit and versions as the merge, for keys the escapes of COPY and of an
    # array literal must carry, a record without created_at and a tombstone
    job = uuid.uuid4()
    odd = ['q"uote', "back\\slash", "tab\there", "new\nline", "comma,{brace}", "é ünï"]

    def chunk():
        return [rec(0, odd[0], {"v": "x\ty\\z"}, created_at=dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc),
                    meta={"campaignId": "C"}),
                *[rec(i, k, {"i": i}, meta={"campaignId": "C"}) for i, k in enumerate(odd[1:], start=1)],
                rec(9, "gone", {"v": 0}, deleted=True, schema_version="2", geolocation={"lat": 1.5})]

    def stored(t):
        rows = db_session.execute(text("""
            SELECT record_key, record_type, schema_version, data, meta, content_hash, deleted, geolocation, origin,
                   created_by, updated_by, created_at = now() AS created_now, updated_at = now() AS updated_now,
                   version - (SELECT min(version) FROM records WHERE tenant_id = :t) AS rank
              FROM records WHERE tenant_id = :t ORDER BY version"""), {"t": t}).all()
        changes = db_session.execute(text("""
            SELECT record_key, version - (SELECT min(version) FROM record_changes WHERE tenant_id = :t) AS rank,
                   old_hash, new_hash, actor, transmission, job_id, record_type, deleted, old_record_type, old_deleted
              FROM record_changes WHERE tenant_id = :t ORDER BY version"""), {"t": t}).all()
        return [tuple(r) for r in rows], [tuple(c) for c in changes]

    got = {}
    for direct in (True, False):
        t = f"t-{uuid.uuid4().hex[:6]}"
        result = apply_chunk(db_session, tenant_id=t, namespace="n", records=chunk(), actor="alice", origin="o",
                             transmission="tx", job_id=job, direct=direct)
        assert result.copied is direct
        assert [(p, k) for p, k, _ in result.accepted] == [(r.position, r.key) for r in chunk()]
        assert result.max_version == result.accepted[-1][2] == current_version(db_session, t)
        got[direct] = stored(t)
    assert got[True] == got[False]
    rows, _ = got[True]
    assert [r[0] for r in rows] == odd + ["gone"]
    assert rows[0][11] is False and rows[1][11] is True and rows[0][3] == {"v": "x\ty\\z"}  # created_now, data


def test_a_chunk_with_a_key_already_stored_is_merged_even_when_copying_was_asked(db_session):
    t = f"t-{uuid.uuid4().hex[:6]}"
    first = apply_chunk(db_session, tenant_id=t, namespace="n", direct=True,
                        records=[rec(0, "a", {"v": 1}), rec(1, "b", {"v": 1})])
    assert first.copied
    again = apply_chunk(db_session, tenant_id=t, namespace="n", direct=True,
                        records=[rec(0, "c", {"v": 1}), rec(1, "a", {"v": 1}), rec(2, "b", {"v": 2})])
    assert not again.copied
    assert again.duplicates == [(1, "a")] and [k for _, k, _ in again.accepted] == ["c", "b"]
    assert get_record(db_session, tenant_id=t, namespace="n", key="b").data_text == '{"v": 2}'
    repeated = apply_chunk(db_session, tenant_id=t, namespace="n", direct=True,  # a key twice: merged
                           records=[rec(0, "d", {"v": 1}), rec(1, "d", {"v": 2})])
    assert not repeated.copied and len(repeated.accepted) == 2
    assert get_record(db_session, tenant_id=t, namespace="n", key="d").data_text == '{"v": 2}'


def test_a_streamed_chunk_is_staged_in_order_and_an_error_from_its_records_is_raised_as_it_is(db_session):
    from models.engine import stage_stream
    from workers.errors import JobFailed
    produced = []

    def records(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise JobFailed("malformed_payload", "broken at item 1500")
            produced.append(i)
            yield rec(i, f"s{i}", {"n": i, "text": "x" * 200})

    staged = stage_stream(db_session, records(3000), with_applied=False)
    # every record went into the staging table, in order, and the apply merges them from there
    assert [r.key for r in staged] == [f"s{i}" for i in range(3000)]
    assert db_session.execute(text("SELECT count(*), min(ord), max(ord) FROM fs_stage")).one() == (3000, 0, 2999)
    result = apply_chunk(db_session, tenant_id="t-stream", namespace="ns", records=staged, staged=True)
    assert len(result.accepted) == 3000 and result.max_version == current_version(db_session, "t-stream")
    assert produced == list(range(3000))
    try:
        stage_stream(db_session, records(3000, fail_at=1500), with_applied=False)
    except JobFailed as exc:  # the pipeline's own error, not the driver's cancelled COPY
        assert exc.code == "malformed_payload"
    else:
        raise AssertionError("the items' error was swallowed")
