"""Synkronus app bundles: checking a pushed ZIP (as a hostile archive, workers/archive.py, and as a bundle,
spec §4), storing it as the tenant's next version (not active), reading a member back from the stored ZIP,
and the ChangeLog between two versions.

A bundle holds only `app/`, `forms/` and `renderers/`; `app/index.html`; each form exactly
`forms/<name>/schema.json` and `forms/<name>/ui.json`; each renderer `renderers/<name>/renderer.jsx`. Every
`x-renderer` / `rendererType` a schema names is a built-in or one of the bundle's renderers, and a form's
core fields (`core_*` or `x-core: true`) are those of the active version. Every problem is reported."""
from __future__ import annotations

import hashlib
import mimetypes
import os
import zipfile
from typing import BinaryIO, Iterator

import orjson

from models.blobs import BlobStore, BlobTooLarge, register_blob
from models.synkronus import bundles as store
from workers.archive import ArchiveLimits, ArchiveRejected, archive_problems, open_member
from workers.jsonsafe import find_unstorable

TOP_LEVEL = ("app", "forms", "renderers")
BUILTIN_RENDERERS = frozenset({
    "text", "number", "integer", "boolean", "date", "time", "datetime", "range", "select", "combo", "radio",
    "checkbox", "toggle", "group", "categorization", "category", "multiselect", "textarea", "slider", "rating",
    "builtin-text", "image", "signature", "audio", "video", "file", "qrcode"})
RENDERER_KEYS = ("x-renderer", "rendererType")
FORM_FILES = ("schema.json", "ui.json")
MAX_FORM_JSON = 8 << 20      # a schema.json or ui.json is parsed whole, up to this
MAX_FORMS_JSON = 64 << 20    # all of them together
MAX_PATH = 1024              # characters of a member name (it is an index key)
MAX_PROBLEMS = 500
READ_SIZE = 1 << 16

__all__ = ["BlobTooLarge", "BundleRejected", "StoredBundle", "bundle_limits", "changes", "member_chunks",
           "store_bundle"]


class BundleRejected(Exception):
    """The bundle cannot be stored: `problems` lists every reason."""

    def __init__(self, problems: list[str]):
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"… and {len(problems) - MAX_PROBLEMS} more problems"]
        super().__init__(problems[0])
        self.problems = problems


def bundle_limits(settings) -> ArchiveLimits:
    return ArchiveLimits(max_member_bytes=settings.max_bundle_bytes * 4, max_total_bytes=settings.max_bundle_bytes * 4)


def mime_type(path: str) -> str:
    if path.lower().endswith(".jsx"):
        return "text/javascript"
    extension = os.path.splitext(path.rsplit("/", 1)[-1])[1]
    return mimetypes.guess_type("file" + extension, strict=False)[0] or "application/octet-stream"


# --- checking --------------------------------------------------------------------------------------

def _select(info: zipfile.ZipInfo, shown: str):
    if len(info.filename) > MAX_PATH:
        return f"entry {shown} has a name longer than {MAX_PATH} characters"
    return None


def _structure(names: list[str], dirs: list[str]) -> tuple[list[str], dict[str, dict], set[str]]:
    """(problems, {form: {file: path}}, renderer names) from the entry names alone."""
    problems: list[str] = []
    forms: dict[str, dict] = {}
    renderers: set[str] = set()
    reported_top: set[str] = set()
    for name in dirs:
        top = name.split("/", 1)[0]
        if top not in TOP_LEVEL and top not in reported_top:
            reported_top.add(top)
            problems.append(f"unexpected top-level directory: {top!r} (only app/, forms/ and renderers/)")
    for name in names:
        parts = name.split("/")
        top = parts[0]
        if len(parts) == 1:
            problems.append(f"unexpected top-level file: {name!r} (only app/, forms/ and renderers/)")
        elif top not in TOP_LEVEL:
            if top not in reported_top:
                reported_top.add(top)
                problems.append(f"unexpected top-level directory: {top!r} (only app/, forms/ and renderers/)")
        elif top == "forms":
            if len(parts) != 3 or not parts[1] or parts[2] not in FORM_FILES:
                problems.append(f"{name!r}: a form is exactly forms/<name>/schema.json and forms/<name>/ui.json")
            else:
                forms.setdefault(parts[1], {})[parts[2]] = name
        elif top == "renderers":
            if len(parts) != 3 or not parts[1] or parts[2] != "renderer.jsx":
                problems.append(f"{name!r}: a renderer is exactly renderers/<name>/renderer.jsx")
            else:
                renderers.add(parts[1])
    if "app/index.html" not in names:
        problems.append("app/index.html is required")
    for form, files in sorted(forms.items()):
        for needed in FORM_FILES:
            if needed not in files:
                problems.append(f"form {form!r} has no forms/{form}/{needed}")
    return problems, forms, renderers


def _renderers_named(schema) -> Iterator[object]:
    """Every value of an `x-renderer` / `rendererType` key anywhere in the document (no recursion)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in RENDERER_KEYS:
                    yield value
                if isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def _type_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "|".join(value)
    return ""


def _hash(value) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def form_info(schema: dict, schema_sha: str, ui_sha: str) -> dict:
    """A form's part of APP_INFO.json."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    fields = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        field_type = _type_text(prop.get("type"))
        question = prop.get("x-question-type") or prop.get("format") or field_type
        fields.append({"name": name, "type": field_type, "required": name in required,
                       "question_type": question if isinstance(question, str) else "",
                       "default": prop.get("default"), "core": name.startswith("core_") or prop.get("x-core") is True})
    core = sorted([f["name"], f["type"]] for f in fields if f["core"])
    return {"core_hash": _hash(core), "form_hash": schema_sha, "ui_hash": ui_sha, "fields": fields,
            "question_types": sorted({f["question_type"] for f in fields if f["question_type"]})}


def _read_member(zf, member: str, limits: ArchiveLimits, keep: bool):
    """(sha256, size, bytes or None): the member hashed as it is inflated (capped), kept when asked."""
    digest, size, kept = hashlib.sha256(), 0, []
    with open_member(zf, member, limits) as raw:
        while chunk := raw.read(READ_SIZE):
            digest.update(chunk)
            size += len(chunk)
            if keep and size <= MAX_FORM_JSON:
                kept.append(chunk)
    return digest.hexdigest(), size, (b"".join(kept) if keep else None)


def check_bundle(upload: BinaryIO, limits: ArchiveLimits, active_info: dict | None) -> tuple[list[dict], dict]:
    """(file index, APP_INFO.json without its version) of a seekable ZIP; raises BundleRejected."""
    try:
        zf = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        raise BundleRejected([f"the bundle is not a readable ZIP archive ({type(exc).__name__})"]) from None
    with zf:
        members, problems = archive_problems(zf, limits, _select)
        safe_dirs = [i.filename for i in zf.infolist() if i.is_dir() and "\x00" not in i.filename
                     and ".." not in i.filename.split("/") and not i.filename.startswith("/")]
        shape, forms, renderers = _structure(members, safe_dirs)
        problems += shape
        files, texts, kept = [], {}, 0
        wanted = {p for files_ in forms.values() for p in files_.values()}
        for member in members:
            try:
                sha, size, data = _read_member(zf, member, limits, member in wanted)
            except ArchiveRejected as exc:
                problems += exc.problems
                continue
            files.append({"path": member, "sha256": sha, "size": size, "mime_type": mime_type(member)})
            if data is not None:
                kept += min(size, MAX_FORM_JSON)
                if size > MAX_FORM_JSON:
                    problems.append(f"{member!r} is larger than {MAX_FORM_JSON} bytes")
                elif kept > MAX_FORMS_JSON:
                    problems.append(f"{member!r}: the forms' JSON files are larger than {MAX_FORMS_JSON} "
                                    "bytes together")
                else:
                    texts[member] = (sha, data)
    info = {"forms": {}}
    for form, paths in sorted(forms.items()):
        parsed = {}
        for kind in FORM_FILES:
            path = paths.get(kind)
            if path not in texts:
                continue
            try:
                parsed[kind] = orjson.loads(texts[path][1])
            except orjson.JSONDecodeError:
                problems.append(f"{path!r} is not valid JSON (UTF-8, at most 1024 levels deep)")
                continue
            if not isinstance(parsed[kind], dict):
                problems.append(f"{path!r} must be a JSON object")
                del parsed[kind]
        if "schema.json" not in parsed or "ui.json" not in parsed:
            continue
        schema = parsed["schema.json"]
        for named in _renderers_named(schema):
            if not isinstance(named, str):
                problems.append(f"form {form!r}: x-renderer / rendererType must be a string")
            elif named not in BUILTIN_RENDERERS and named not in renderers:
                problems.append(f"form {form!r}: renderer {named!r} is neither built in nor in renderers/")
        entry = form_info(schema, texts[paths["schema.json"]][0], texts[paths["ui.json"]][0])
        before = ((active_info or {}).get("forms") or {}).get(form)
        if before is not None and before.get("core_hash") != entry["core_hash"]:
            problems.append(f"form {form!r}: its core fields differ from the active version's; core fields "
                            "(core_* or x-core: true) cannot change")
        info["forms"][form] = entry
    unstorable = find_unstorable(info, max_string=1 << 20)
    if unstorable is not None:
        code, message, where = unstorable
        problems.append(f"a form field cannot be stored ({where}: {message})")
    if problems:
        raise BundleRejected(problems)
    return files, info


# --- storing ---------------------------------------------------------------------------------------

class StoredBundle:
    def __init__(self, row, files: list[dict], dropped: list[int]):
        self.row, self.files, self.dropped = row, files, dropped


def store_bundle(session, blobs: BlobStore, settings, *, tenant_id: str, upload: BinaryIO,
                 actor: str | None) -> StoredBundle:
    """Check the (seekable) upload, then stream it into the blob store and record it as the tenant's next
    version, not active; older versions beyond MAX_VERSIONS_KEPT are dropped (never the active one).
    Raises BlobTooLarge or BundleRejected. The caller commits."""
    upload.seek(0, os.SEEK_END)
    if upload.tell() > settings.max_bundle_bytes:
        raise BlobTooLarge(settings.max_bundle_bytes)
    upload.seek(0)
    active = store.active_version(session, tenant_id)
    files, info = check_bundle(upload, bundle_limits(settings), active.app_info if active is not None else None)
    upload.seek(0)
    sha, size = blobs.put_stream(upload, max_bytes=settings.max_bundle_bytes)
    register_blob(session, sha, size, "application/zip")
    store.lock_tenant(session, tenant_id)
    again = store.active_version(session, tenant_id)
    if (again.id if again else None) != (active.id if active else None):  # switched meanwhile: check again
        upload.seek(0)
        files, info = check_bundle(upload, bundle_limits(settings), again.app_info if again else None)
    number = store.next_number(session, tenant_id)
    info = {"version": store.version_name(number), **info}
    row = store.add_version(session, tenant_id=tenant_id, number=number, sha256=sha, size=size, app_info=info,
                            files=files, created_by=actor)
    dropped = store.prune(session, tenant_id, settings.max_versions_kept)
    return StoredBundle(row, files, dropped)


# --- reading back ----------------------------------------------------------------------------------

class MemberStream:
    """A member of a stored ZIP, opened now (so a missing or unreadable blob fails before an answer
    starts) and streamed as it is iterated, capped at its recorded size; close() releases the files."""

    def __init__(self, blobs: BlobStore, zip_sha256: str, path: str, size: int):
        limits = ArchiveLimits(max_member_bytes=size, max_total_bytes=size)
        self._raw = blobs.open(zip_sha256)
        try:
            self._zip = zipfile.ZipFile(self._raw)
            self._member = open_member(self._zip, path, limits)
        except BaseException:
            self._raw.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self._member.read(READ_SIZE):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        for part in ("_member", "_zip", "_raw"):
            handle = self.__dict__.pop(part, None)
            if handle is not None:
                handle.close()


def member_chunks(blobs: BlobStore, zip_sha256: str, path: str, size: int) -> MemberStream:
    """The member's bytes from the stored ZIP, streamed (capped at its recorded size)."""
    return MemberStream(blobs, zip_sha256, path, size)


# --- ChangeLog -------------------------------------------------------------------------------------

def changes(current_name: str, current_info: dict, target_name: str, target_info: dict | None) -> dict:
    """The ChangeLog of spec §4: what changed from `target` to `current`."""
    answer = {"compare_version_a": current_name, "compare_version_b": target_name, "form_changes": False,
              "ui_changes": False}
    if target_info is None:
        return answer
    now, before = current_info.get("forms") or {}, target_info.get("forms") or {}
    new = [{"form": f} for f in sorted(set(now) - set(before))]
    removed = [{"form": f} for f in sorted(set(before) - set(now))]
    modified = []
    for form in sorted(set(now) & set(before)):
        a, b = now[form], before[form]
        schema_changed, ui_changed = a["form_hash"] != b["form_hash"], a["ui_hash"] != b["ui_hash"]
        if not (schema_changed or ui_changed):
            continue
        fields_a = {(f["name"], f["type"]) for f in a["fields"]}
        fields_b = {(f["name"], f["type"]) for f in b["fields"]}
        entry = {"form": form, "schema_changed": schema_changed, "ui_changed": ui_changed,
                 "core_changed": a["core_hash"] != b["core_hash"]}
        added = [{"field": n, "type": t} for n, t in sorted(fields_a - fields_b)]
        gone = [{"field": n, "type": t} for n, t in sorted(fields_b - fields_a)]
        if added:
            entry["added_fields"] = added
        if gone:
            entry["removed_fields"] = gone
        modified.append(entry)
    answer["form_changes"] = bool(new or removed or any(m["schema_changed"] for m in modified))
    answer["ui_changes"] = bool(any(m["ui_changed"] for m in modified))
    if new:
        answer["new_forms"] = new
    if removed:
        answer["removed_forms"] = removed
    if modified:
        answer["modified_forms"] = modified
    return answer
