"""Builds a worker's registry: the engine's own job kinds, then each served dialect's (its
`workers/<dialect>/__init__.py` defines `register(registry, settings)`). Dialects are imported by name
here and nowhere else in the workers core."""
from __future__ import annotations

import importlib

from workers import builtin, exports, index
from workers.registry import Registry


def build_registry(settings) -> Registry:
    registry = Registry()
    builtin.register(registry, settings)
    index.register(registry, settings)
    exports.register(registry, settings)
    for name in settings.dialects:
        importlib.import_module(f"workers.{name}").register(registry, settings)
    return registry
