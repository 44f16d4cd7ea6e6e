"""Process entry point for `celery -A workers.celery_main worker` (the Procfile's worker lines)."""
from config import load_settings
from config.logging import configure_logging
from workers.app import make_celery

settings = load_settings()
configure_logging(settings)
app = make_celery(settings)
