"""Every job kind a dialect declares has a pipeline in the worker, on the declared queue."""
import importlib

import pytest

from config.settings import ALL_QUEUES, DIALECTS, Settings
from models.kinds import EXPORT, INDEX, PROBES, JobKind
from workers.dialects import build_registry
from workers.registry import Registry


def test_every_declared_kind_is_registered():
    registry = build_registry(Settings())
    declared = [INDEX, EXPORT, *PROBES.values()]
    for name in DIALECTS:
        declared.extend(importlib.import_module(f"models.{name}").JOB_KINDS)
    assert sorted(k.name for k in registry.kinds()) == sorted(k.name for k in declared)
    for kind in declared:
        assert registry.get(kind.name).kind == kind
    assert registry.queues() == set(ALL_QUEUES)


def test_a_deployment_serving_fewer_dialects_registers_fewer_kinds():
    registry = build_registry(Settings(dialects=("synkronus",)))
    assert registry.get("synkronus.push") is not None and registry.get("msupply.push") is None


def test_a_kind_cannot_be_registered_twice_with_another_pipeline():
    registry = Registry()
    kind = JobKind("x.y", "ingest")
    registry.add(kind, print)
    registry.add(kind, print)  # the same registration again is harmless
    with pytest.raises(ValueError):
        registry.add(kind, repr)


def test_a_kind_names_a_known_queue():
    with pytest.raises(ValueError):
        JobKind("x.z", "nosuchqueue")
