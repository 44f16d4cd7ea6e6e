"""Process entry point for `celery -A workers.celery_main worker` (the Procfile's worker lines). It refuses
to start without JWT_SECRET (config.settings.require_secret). pyarrow's default memory pool is jemalloc here
(read once, when pyarrow is imported): it hands an export's freed buffers back to the system, so a worker's
footprint does not grow with the size of an export (workers.exports._export_pool). Its pages past their
dirty decay are returned at once (muzzy_decay_ms:0, read from JE_ARROW_MALLOC_CONF when pyarrow loads):
pyarrow's own setting frees them lazily (MADV_FREE), and Linux counts such pages in the worker's RSS
(LazyFree) until memory runs short, so they piled up with the length of an export (1 MB at 300k records,
4-8 MB at 1M)."""
import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
os.environ.setdefault("JE_ARROW_MALLOC_CONF", "muzzy_decay_ms:0")

from config import load_settings
from config.logging import configure_logging
from config.settings import require_secret
from workers.app import make_celery

settings = require_secret(load_settings())
configure_logging(settings)
app = make_celery(settings)
