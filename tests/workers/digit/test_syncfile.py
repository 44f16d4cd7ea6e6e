"""Reading sync files: the three formats, stable positions for resuming, well-formedness failures,
ZIP defences, and memory that does not grow with the file."""
import io
import json
import os
import struct
import tracemalloc
import warnings
import zipfile

import pytest

from tests.web.digit.support import household, individual, json_document, ndjson, zip_of
from workers.digit.syncfile import Limits, entities, scan
from workers.errors import JobFailed


def _write(tmp_path, data: bytes, name="sync.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(path, start=0):
    layout = scan(path)
    return layout, list(entities(path, layout, start=start))


def test_json_document_positions_follow_schema_order(tmp_path):
    path = _write(tmp_path, json_document([household(i) for i in range(3)], [individual(i) for i in range(2)]))
    layout, items = _read(path)
    assert layout["total"] == 5 and layout["parts"][0]["schemas"] == [["household", 3], ["individual", 2]]
    assert [(p, s, e["clientReferenceId"]) for p, s, e in items] == [
        (0, "household", "hh-0000000"), (1, "household", "hh-0000001"), (2, "household", "hh-0000002"),
        (3, "individual", "ind-0000000"), (4, "individual", "ind-0000001")]
    # Resuming from a checkpoint yields exactly the rest.
    assert [p for p, _, _ in entities(path, layout, start=2)] == [2, 3, 4]
    assert list(entities(path, layout, start=5)) == []


def test_ndjson_and_bad_lines(tmp_path):
    data = ndjson([("household", household(1)), ("individual", individual(1))]) + b"\n" + b'{"not": "an envelope"}\n'
    layout, items = _read(_write(tmp_path, data))
    assert layout["parts"][0]["format"] == "ndjson" and layout["total"] == 3
    assert [(p, s) for p, s, _ in items] == [(0, "household"), (1, "individual"), (2, None)]


def test_zip_of_both_formats_continues_positions_across_members(tmp_path):
    data = zip_of({"a/households.json": json_document([household(i) for i in range(2)]),
                   "b.ndjson": ndjson([("individual", individual(i)) for i in range(3)]),
                   "__MACOSX/._b.ndjson": b"\x00junk", ".DS_Store": b"junk", "dir/": b""})
    layout, items = _read(_write(tmp_path, data))
    assert layout["archive"] and [p["count"] for p in layout["parts"]] == [2, 3]
    assert [p for p, _, _ in items] == [0, 1, 2, 3, 4]
    assert [p for p, _, _ in entities(_write(tmp_path, data), layout, start=3)] == [3, 4]


@pytest.mark.parametrize("data, code", [
    (json_document([household(1), household(2)])[:-20], "truncated_file"),
    (ndjson([("household", household(1)), ("household", household(2))])[:-15], "truncated_file"),
    (b'{"entities": {"household": [{"clientReferenceId": "a\xff\xfe"}]}}', "invalid_utf8"),
    (ndjson([("household", household(1))]) + b'{"schema": "household", "data": {"x": "\xc3\x28"}}\n', "invalid_utf8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "invalid_format"),
    (b"hello, this is plain text\n", "invalid_format"),
    (b"", "invalid_format"),
    (b'{"entities": {"household": [1, 2,, 3]}}', "invalid_json"),
    (b'[{"clientReferenceId": "x"}]', "invalid_format"),
    (b'{"entities": [1, 2]}', "invalid_format"),
    (b'{"entities": {"household": {"a": 1}}}', "invalid_format"),
    (b'{"something": "else"}', "invalid_format"),
])
def test_broken_files_fail_the_scan_with_a_clear_reason(tmp_path, data, code):
    with pytest.raises(JobFailed) as info:
        scan(_write(tmp_path, data))
    assert info.value.code == code
    assert len(info.value.detail) > 10


def _zip_with(infos_and_data) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in infos_and_data:
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink_zip() -> bytes:
    info = zipfile.ZipInfo("link.json")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return _zip_with([(info, "/etc/passwd")])


def _bomb() -> bytes:
    return _zip_with([(zipfile.ZipInfo("zeros.json"), b"\x00" * (50 << 20))])


def _size_lie() -> bytes:
    """Header says 10 bytes; the data inflates to 4 MB."""
    data = bytearray(_zip_with([(zipfile.ZipInfo("lie.json"), b" " * (4 << 20))]))
    real = struct.pack("<I", 4 << 20)
    fake = struct.pack("<I", 10)
    local = data.find(b"PK\x03\x04")
    assert data[local + 22:local + 26] == real
    data[local + 22:local + 26] = fake
    central = data.find(b"PK\x01\x02")
    assert data[central + 24:central + 28] == real
    data[central + 24:central + 28] = fake
    return bytes(data)


def _nul_name() -> bytes:
    return zip_of({"aXjson.json": b"{}"}).replace(b"aXjson", b"a\x00json")


@pytest.mark.parametrize("build, words", [
    (lambda: zip_of({"../evil.json": b"{}"}), "outside"),
    (lambda: zip_of({"a/../../evil.json": b"{}"}), "outside"),
    (lambda: zip_of({"/etc/evil.json": b"{}"}), "absolute"),
    (lambda: zip_of({"C:\\evil.json": b"{}"}), "absolute"),
    (_symlink_zip, "symbolic link"),
    (_nul_name, "NUL"),
    (lambda: _zip_with([(zipfile.ZipInfo("a.json"), b"{}"), (zipfile.ZipInfo("a.json"), b"{}")]), "twice"),
    (_bomb, "ZIP bomb"),
    (_size_lie, "corrupt"),
    (lambda: zip_of({"inner.json": zip_of({"x.json": b"{}"})}), "nested"),
    (lambda: zip_of({"run.exe": b"MZ"}), "not a .json"),
    (lambda: b"PK\x03\x04 but not really a zip", "not a readable ZIP"),
])
def test_unsafe_archives_are_refused_whole(tmp_path, build, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it was asked to write
        data = build()
    path = _write(tmp_path, data, "sync.zip")
    before = set(os.listdir(tmp_path))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(JobFailed) as info:
            scan(path)
    finally:
        os.chdir(cwd)
    assert info.value.code == "archive_rejected"
    assert words in info.value.detail
    assert set(os.listdir(tmp_path)) == before  # nothing extracted anywhere
    assert not (tmp_path.parent / "evil.json").exists()


def test_entry_count_and_member_size_limits(tmp_path):
    many = zip_of({f"m{i}.json": b'{"entities": {}}' for i in range(11)})
    with pytest.raises(JobFailed, match="11 entries"):
        scan(_write(tmp_path, many), Limits(max_entries=10))
    big = zip_of({"big.ndjson": ndjson([("household", household(i)) for i in range(50)])})
    with pytest.raises(JobFailed, match="declares"):
        scan(_write(tmp_path, big), Limits(max_member_bytes=1000))
    with pytest.raises(JobFailed, match="total size"):
        scan(_write(tmp_path, big), Limits(max_total_bytes=1000))


def _peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_on_a_large_file(tmp_path):
    rows = 40_000  # about 10 MB of JSON
    doc = tmp_path / "big.json"
    with open(doc, "wb") as f:
        f.write(b'{"entities": {"household": [')
        for i in range(rows):
            f.write((b"," if i else b"") + json.dumps(household(i)).encode())
        f.write(b"]}}")
    layout = scan(doc)

    counted = []
    peak = _peak_while(lambda: counted.append(sum(1 for _ in entities(doc, layout))))
    assert counted == [rows]
    assert doc.stat().st_size > 8 << 20
    assert peak < 2 << 20, f"peak {peak} bytes while reading {doc.stat().st_size}"
    peak_scan = _peak_while(lambda: scan(doc))
    assert peak_scan < 2 << 20


def test_reading_a_member_once_per_schema_stays_within_the_limits(tmp_path):
    member = json_document([household(i) for i in range(20)], [individual(i) for i in range(20)])
    path = _write(tmp_path, zip_of({"both.json": member}))
    limits = Limits(max_member_bytes=len(member), max_total_bytes=len(member))
    layout = scan(path, limits)
    assert [p for p, _, _ in entities(path, layout, limits=limits)] == list(range(40))


def test_values_the_streaming_parsers_cannot_read_exactly_stay_per_entity(tmp_path):
    import workers.digit.syncfile as syncfile
    ok = json.dumps({"clientReferenceId": "a", "name": "\U0001F600"}).encode()  # a surrogate pair, escaped
    # NDJSON: a line nested past every parser's limit, a lone surrogate: each is its own entity
    deep = b'{"schema": "household", "data": {"x": ' + b"[" * 1100 + b"]" * 1100 + b"}}"
    lone = b'{"schema": "household", "data": {"clientReferenceId": "b", "name": "\\ud800"}}'
    path = _write(tmp_path, b'{"schema": "household", "data": ' + ok + b"}\n" + deep + b"\n" + lone + b"\n",
                  "sync.ndjson")
    layout, items = _read(path)
    assert layout["total"] == 3
    assert items[0][2]["name"] == "\U0001F600"
    assert isinstance(items[1][2], syncfile.Unreadable) and items[1][2].code == "TOO_DEEP"
    assert items[2][2]["name"] == "\ud800"  # kept as it is, for the entity check to refuse
    # JSON document: a lone surrogate escape is read exactly (the streaming parser would make it "?")
    path = _write(tmp_path, b'{"entities": {"household": [' + ok + b', {"clientReferenceId": "b", "name": "\\ud800"}]}}',
                  "sync.json")
    layout, items = _read(path)
    assert [e["name"] for _, _, e in items] == ["\U0001F600", "\ud800"]
    assert [p for p, _, _ in entities(path, layout, start=1)] == [1]
