"""Lineage: deployment → model version → job → base model → data files → parameters → metrics.

Recorded once at registration from the job's typed stage results (``Validated``,
``Evaluation``), stored with the version as JSON and read back as :class:`Lineage`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as BadShape

from chattune.catalog.cards import get_card
from chattune.errors import ChattuneError
from chattune.store.jobs import Job
from chattune.train.results import Evaluation, Result, Validated

R = TypeVar("R", bound=Result)


class DataFile(BaseModel):
    """One data split the job read: where, its sha256, how many rows."""

    split: str
    path: str | None = None
    sha256: str
    rows: int | None = None


class Lineage(BaseModel):
    """Where a registered version came from (records of any age read into it)."""

    model_config = ConfigDict(extra="ignore")

    job: str | None = None
    mlflow_run_id: str | None = None
    base_model: str | None = None
    base: dict[str, Any] | None = None
    data: list[DataFile] = []
    data_sha256: dict[str, str] = {}
    """Older records carry only this; kept so their lineage stays comparable."""
    spec: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    metrics: dict[str, float] = {}

    def files(self) -> list[DataFile]:
        """The data files, from ``data`` or (older records) ``data_sha256``."""
        return self.data or [DataFile(split=s, sha256=d) for s, d in self.data_sha256.items()]


def stage_result(job: Job, stage: str, kind: type[R]) -> R | None:
    """Stage ``stage``'s result read as ``kind``; None when it has none (or an older shape)."""
    outputs = next((s.outputs for s in job.stages if s.name == stage), None)
    if not outputs:
        return None
    try:
        return kind.model_validate(outputs)
    except BadShape:
        return None


def job_lineage(job: Job) -> Lineage:
    """Where a job's model came from: job, base model, data files with sha256, spec, metrics."""
    validated = stage_result(job, "validate", Validated)
    evaluation = stage_result(job, "evaluate", Evaluation)
    data_paths = job.spec.get("data") or {}
    digests = validated.data_sha256 if validated else {}
    rows = validated.rows if validated else {}
    base_model = validated.model if validated else None
    return Lineage(
        job=job.name,
        mlflow_run_id=job.mlflow_run_id,
        base_model=base_model,
        base=base_model_info(base_model or job.spec.get("model", "")),
        data=[
            DataFile(split=split, path=data_paths.get(split), sha256=digest, rows=rows.get(split))
            for split, digest in digests.items()
        ],
        data_sha256=digests,
        spec=job.spec,
        parameters={k: v["value"] for k, v in job.parameters.items()},
        metrics=evaluation.metrics if evaluation else {},
    )


def base_model_info(ref: str) -> dict[str, Any]:
    """Name, version and source of a base model reference (``NAME:VERSION``, hf://, folder)."""
    name, _, version = ref.partition(":")
    try:
        card = get_card(name)
    except ChattuneError:
        return {"name": ref, "version": None, "source": ref}
    return {"name": card.name, "version": version or card.version, "source": card.source}
