"""Plugs the served dialects into the app and the CLI. Each dialect's `web/<dialect>/__init__.py`
defines `register(app)` (its blueprints and error renderers) and its `cli.py` a click group `group`
(or None). Dialects are imported by name here and nowhere else in the web core."""
from __future__ import annotations

import importlib
from typing import Iterable

import click
from flask import Flask


def register_all(app: Flask, names: Iterable[str]) -> None:
    for name in names:
        importlib.import_module(f"web.{name}").register(app)


def cli_groups(names: Iterable[str]) -> list[click.Group]:
    groups = []
    for name in names:
        group = getattr(importlib.import_module(f"web.{name}.cli"), "group", None)
        if group is not None:
            groups.append(group)
    return groups
