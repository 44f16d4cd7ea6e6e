"""Process entry point for gunicorn (the Procfile's web line): `gunicorn web.wsgi:app`."""
from config import load_settings
from config.logging import configure_logging
from web.app import create_app

settings = load_settings()
configure_logging(settings)
app = create_app(settings)
