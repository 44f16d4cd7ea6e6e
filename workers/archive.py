"""Hostile-ZIP checks any dialect reading an uploaded archive uses: refuse the whole archive on an unsafe
entry (names are never "cleaned"), and inflate a member no further than its declared size.

An archive is refused for: too many entries, a NUL in a name, an absolute or non-portable path, a `..`
segment, a name that appears twice, a link or other non-regular entry, an encrypted entry, a member or a
total declared above the limits, and a compression ratio that looks like a ZIP bomb. `Capped` then stops a
member that inflates past what its header declared (a size lie)."""
from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable

from workers.errors import JobFailed

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000           # ZIP members
    max_ratio: int = 200                # inflated : compressed, for members above ratio_floor
    ratio_floor: int = 1 << 20
    max_member_bytes: int = 2 << 30
    max_total_bytes: int = 8 << 30      # all members inflated together


class ArchiveRejected(JobFailed):
    """The archive is unsafe to read: `problems` lists every reason (the first is the message)."""

    def __init__(self, problems: list[str]):
        super().__init__("archive_rejected", problems[0])
        self.problems = problems


# select(info, shown) -> None (a member to read), SKIP (ignore it) or a problem text
SKIP = object()
Select = Callable[[zipfile.ZipInfo, str], object]


def _entry_problem(info: zipfile.ZipInfo, shown: str, seen: set[str]) -> str | None:
    name = info.orig_filename
    if "\x00" in name:
        return f"entry {shown} has a NUL in its name"
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"entry {shown} has an absolute or non-portable path"
    if ".." in name.split("/"):
        return f"entry {shown} points outside the archive (..)"
    if name in seen:
        return f"entry {shown} appears twice"
    seen.add(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"entry {shown} is a symbolic link"
    if info.is_dir():
        return None
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return f"entry {shown} is not a regular file"
    if info.flag_bits & 0x1:
        return f"entry {shown} is encrypted"
    return None


def archive_problems(zf: zipfile.ZipFile, limits: ArchiveLimits, select: Select | None = None
                     ) -> tuple[list[str], list[str]]:
    """(members to read in archive order, every problem found). Directories are never members."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        return [], [f"the archive has {len(infos)} entries; at most {limits.max_entries} are accepted"]
    seen: set[str] = set()
    members: list[str] = []
    problems: list[str] = []
    declared = 0
    total_reported = False
    for info in infos:
        shown = repr(info.orig_filename)[:200]
        problem = _entry_problem(info, shown, seen)
        if problem is not None:
            problems.append(problem)
            continue
        if info.is_dir():
            continue
        if select is not None:
            verdict = select(info, shown)
            if verdict is SKIP:
                continue
            if verdict is not None:
                problems.append(str(verdict))
                continue
        if info.file_size > limits.max_member_bytes:
            problems.append(f"entry {shown} declares {info.file_size} bytes; the limit is {limits.max_member_bytes}")
            continue
        declared += info.file_size
        if declared > limits.max_total_bytes:
            if not total_reported:
                problems.append("the archive declares more than the total size limit "
                                f"({limits.max_total_bytes} bytes)")
                total_reported = True
            continue
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(1, info.compress_size):
            problems.append(f"entry {shown} compresses {info.file_size // max(1, info.compress_size)}:1; "
                            f"more than {limits.max_ratio}:1 looks like a ZIP bomb")
            continue
        members.append(info.filename)
    return members, problems


def check_archive(zf: zipfile.ZipFile, limits: ArchiveLimits, select: Select | None = None) -> list[str]:
    """The members to read, in archive order; raises ArchiveRejected listing every problem."""
    members, problems = archive_problems(zf, limits, select)
    if problems:
        raise ArchiveRejected(problems)
    return members


def close_both(self) -> None:
    """close() of a counting wrapper: the wrapped stream, then the wrapper."""
    try:
        self.raw.close()
    finally:
        io.RawIOBase.close(self)


class Capped(io.RawIOBase):
    """Counts bytes as they are inflated and stops a member at its cap (what its header declared, at
    most the member limit), so a size lie in a ZIP header cannot make us inflate more. With the declared
    sizes summed against the total limit up front, this also bounds the whole archive."""

    def __init__(self, raw, cap: int, name: str):
        self.raw, self.cap, self.name, self.count = raw, cap, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.raw.read(len(buffer))
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ArchiveRejected([f"member {self.name!r} is corrupt ({exc})"]) from None
        n = len(data)
        self.count += n
        if self.count > self.cap:
            raise ArchiveRejected([f"member {self.name!r} inflates past {self.cap} bytes"])
        buffer[:n] = data
        return n

    close = close_both


def open_member(zf: zipfile.ZipFile, member: str, limits: ArchiveLimits) -> Capped:
    """A member as a raw stream capped at its declared size (and the member limit)."""
    info = zf.getinfo(member)
    try:
        raw = zf.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise ArchiveRejected([f"member {member!r} cannot be read ({exc})"]) from None
    return Capped(raw, min(info.file_size, limits.max_member_bytes), member)
