"""mSupply sync v1–v4: the dialect's constants (namespace, job kinds, the primary's site id)."""
from __future__ import annotations

from config.settings import QUEUE_EXPORTS, QUEUE_INGEST
from models.kinds import JobKind

NAMESPACE = "msupply"
SERVER_SITE_ID = 1          # the primary's site id, which every satellite sends as `to_site`
ORIGIN_PREFIX = "msupply-site:"

PUSH = JobKind("msupply.push", QUEUE_INGEST)
INITIAL_DUMP = JobKind("msupply.initial_dump", QUEUE_EXPORTS)
JOB_KINDS = (PUSH, INITIAL_DUMP)
