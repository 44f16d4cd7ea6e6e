"""Configuration: the only package that reads the environment (see settings.load_settings)."""
from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
