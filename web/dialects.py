"""Plugs the served dialects into the app and the CLI. Each dialect's `web/<dialect>/__init__.py`
defines `register(app)` (its blueprints and error renderers) and its `cli.py` a click group `group`
(or None). A dialect that also serves some of fieldsync's own API (an admin API in fieldsync's error
shape, not the upstream system's) says so with `own_api()` in its `__init__.py`: those blueprints are
then described in /openapi.json like the core's. Dialects are imported by name here and nowhere else in
the web core."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Iterable

import click
from flask import Flask


def register_all(app: Flask, names: Iterable[str]) -> None:
    for name in names:
        importlib.import_module(f"web.{name}").register(app)


@dataclass(frozen=True)
class OwnApi:
    """Routes of a dialect that are fieldsync's own API: their blueprints, their OpenAPI paths (keyed by
    the Flask rule) and the marshmallow schemas those paths name (and that validate their requests)."""
    blueprints: frozenset[str]
    paths: dict[str, dict]
    schemas: dict[str, type] = field(default_factory=dict)


def own_apis(names: Iterable[str]) -> list[OwnApi]:
    found = []
    for name in names:
        hook = getattr(importlib.import_module(f"web.{name}"), "own_api", None)
        if hook is not None:
            found.append(hook())
    return found


def cli_groups(names: Iterable[str]) -> list[click.Group]:
    groups = []
    for name in names:
        group = getattr(importlib.import_module(f"web.{name}.cli"), "group", None)
        if group is not None:
            groups.append(group)
    return groups
