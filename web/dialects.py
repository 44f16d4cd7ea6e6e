"""Registers every dialect's blueprints (each dialect is a package under web/)."""
from __future__ import annotations

from flask import Flask


def register_all(app: Flask) -> None:
    from web import digit, msupply, synkronus
    synkronus.register(app)
    msupply.register(app)
    digit.register(app)
