"""A job's plan, without running it: effective parameters and what each stage would do.

>>> plan = client.jobs.plan("examples/job.yaml")
>>> plan.parameters["learning_rate"]
{'value': 0.0002, 'source': 'model card'}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chattune.jobs.pipeline import PIPELINE, Inputs, cache_keys
from chattune.jobs.runner import data_digests, outputs_exist
from chattune.jobs.spec import JobSpec, effective_yaml, resolve_parameters
from chattune.store.jobs import JobStore


@dataclass(frozen=True)
class PlannedStage:
    name: str
    cache_key: str
    action: str
    """``run``, or ``reuse from job J`` when a completed run with the same key exists."""


@dataclass(frozen=True)
class Plan:
    """What ``jobs create`` would start."""

    name: str
    model: str
    parameters: dict[str, dict[str, Any]]
    stages: list[PlannedStage]
    spec_yaml: str
    """The ``spec.yaml`` the job would write (effective values, sources as comments)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(jobs: JobStore, spec: JobSpec) -> Plan:
    """Resolve parameters and cache keys; look up which stages another job already ran."""
    effective = resolve_parameters(spec)
    inputs = Inputs(spec, effective.params, Path("."), data_sha256=data_digests(spec))
    keys = cache_keys(inputs)
    stages = []
    for stage in PIPELINE:
        action = "run"
        reused = (
            None if spec.settings.force_rerun else jobs.find_reusable(stage.name, keys[stage.name])
        )
        if reused and stage.shared and outputs_exist(reused[1]):
            action = f"reuse from job {reused[0]}"
        stages.append(PlannedStage(stage.name, keys[stage.name], action))
    return Plan(spec.name, spec.model, effective.table(), stages, effective_yaml(spec, effective))
