"""Process entry point for `celery -A workers.celery_main worker` (the Procfile's worker lines). It refuses
to start without JWT_SECRET (config.settings.require_secret)."""
from config import load_settings
from config.logging import configure_logging
from config.settings import require_secret
from workers.app import make_celery

settings = require_secret(load_settings())
configure_logging(settings)
app = make_celery(settings)
