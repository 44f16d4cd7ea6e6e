"""Ids that arrive as text: parsed in one place, so a malformed id is simply "not found"."""
from __future__ import annotations

import uuid


def parse_uuid(value) -> uuid.UUID | None:
    """The UUID `value` spells (any case, with or without hyphens), or None when it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None
