"""Process entry point for `celery -A workers.celery_main worker` (the Procfile's worker lines). It refuses
to start without JWT_SECRET (config.settings.require_secret). pyarrow's default memory pool is jemalloc here
(read once, when pyarrow is imported): it hands an export's freed buffers back to the system, so a worker's
footprint does not grow with the size of an export (workers.exports._export_pool)."""
import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

from config import load_settings
from config.logging import configure_logging
from config.settings import require_secret
from workers.app import make_celery

settings = require_secret(load_settings())
configure_logging(settings)
app = make_celery(settings)
