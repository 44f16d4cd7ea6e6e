"""Loads the models layer of each dialect named in the settings (config.settings.DIALECTS): its tables
(`models/<dialect>/tables.py`), for migrations and queries, and its after-apply hooks (an
`after_apply(settings)` in `models/<dialect>/store.py`, when the dialect has any), for the engine. Dialects are imported by name
here and nowhere else in the models core."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Iterable

from config.settings import DIALECTS
from models.engine import AfterApply


def store(name: str) -> ModuleType:
    return importlib.import_module(f"models.{name}.store")


def load_tables(names: Iterable[str] = DIALECTS) -> None:
    """Put every dialect's tables on the shared metadata (Alembic compares against it). All known
    dialects by default: a deployment that serves fewer still keeps one schema."""
    importlib.import_module("models.tables")
    importlib.import_module("models.records")
    importlib.import_module("models.devices")
    importlib.import_module("models.ops")  # the console's indexes on jobs
    for name in names:
        importlib.import_module(f"models.{name}.tables")


def after_apply_hooks(settings) -> dict[str, list[AfterApply]]:
    """{namespace: [hook, …]} from every served dialect whose store declares `after_apply(settings)`."""
    hooks: dict[str, list[AfterApply]] = {}
    for name in settings.dialects:
        declare = getattr(store(name), "after_apply", None)
        if declare is None:
            continue
        for namespace, found in declare(settings).items():
            hooks.setdefault(namespace, []).extend(found)
    return hooks


def searched_namespaces(settings) -> frozenset[str]:
    """The namespaces whose dialect searches them (`SEARCHED_NAMESPACES` in models/<dialect>/__init__.py):
    only these get search documents from the index step."""
    found: set[str] = set()
    for name in settings.dialects:
        found.update(getattr(importlib.import_module(f"models.{name}"), "SEARCHED_NAMESPACES", ()))
    return frozenset(found)


def namespaces(names: Iterable[str]) -> list[str]:
    """The record namespaces of the named dialects (each dialect's NAMESPACE), in the order given."""
    return [importlib.import_module(f"models.{name}").NAMESPACE for name in names]
