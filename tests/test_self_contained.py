"""The suite carries its own test data: nothing under tests/ reads from the `shared` folder that sits
next to some checkouts, nor climbs above the repository root. (A fresh clone laid out differently has
no such folder.) Test data lives in tests/fixtures/."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

# Spelled in pieces so that this file does not match its own patterns.
_SHARED = "sha" + "red"
FORBIDDEN = [
    re.compile(r"\.\.[/\\]+(?:\.\.[/\\]+)*" + _SHARED + r"\b"),  # ../<folder>, ../../<folder>/...
    re.compile(r"""["']""" + _SHARED + r"""(?:["']|[/\\])"""),  # a quoted path component, or a quoted path starting with it
    re.compile(r"[/\\]work[/\\]+" + _SHARED + r"\b"),  # an absolute path to the sibling folder
]
PARENTS_INDEX = re.compile(r"Path\(__file__\)(?:\.resolve\(\)|\.absolute\(\))?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"Path\(__file__\)(?:\.resolve\(\)|\.absolute\(\))?((?:\.parent\b)+)")


def _text_files():
    for path in sorted(TESTS.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary data cannot name a path


def test_no_file_under_tests_refers_to_the_shared_folder_outside_the_repo():
    hits = []
    for path, text in _text_files():
        for lineno, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in FORBIDDEN):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not hits, "tests must read their data from tests/fixtures/, not the sibling folder:\n" + "\n".join(hits)


def test_no_test_climbs_above_the_repository_root():
    hits = []
    for path, text in _text_files():
        if path.suffix != ".py":
            continue
        # parents[len(parts) - 1] of a file at tests/a/b.py (parts: tests, a, b.py) is the repo root.
        top = len(path.relative_to(ROOT).parts) - 1
        for lineno, line in enumerate(text.splitlines(), 1):
            climbs = [int(m.group(1)) for m in PARENTS_INDEX.finditer(line)]
            climbs += [m.group(1).count(".parent") - 1 for m in PARENT_CHAIN.finditer(line)]
            if any(c > top for c in climbs):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not hits, "these reach outside the repository:\n" + "\n".join(hits)


def test_the_forbidden_patterns_catch_what_they_should():
    bad = ['Path(__file__).resolve()' + '.parents[3] / "' + _SHARED + '" / "spec"', "open('../" + _SHARED + "/x.json')",
           "/work/" + _SHARED + "/spec/fixtures"]
    good = ["Helpers " + _SHARED + " by the mSupply tests", "the " + _SHARED + " servers are left alone"]
    assert all(any(p.search(s) for p in FORBIDDEN) for s in bad)
    assert not any(p.search(s) for p in FORBIDDEN for s in good)
    assert [int(m.group(1)) for m in PARENTS_INDEX.finditer("Path(__file__).resolve()" + ".parents[3]")] == [3]
    assert PARENT_CHAIN.search("Path(__file__).resolve()" + ".parent.parent").group(1).count(".parent") == 2
