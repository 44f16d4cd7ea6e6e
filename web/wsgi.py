"""Process entry point for gunicorn (the Procfile's web line): `gunicorn web.wsgi:app`. It refuses to start
without JWT_SECRET (config.settings.require_secret)."""
from config import load_settings
from config.logging import configure_logging
from config.settings import require_secret
from web.app import create_app

settings = require_secret(load_settings())
configure_logging(settings)
app = create_app(settings)
