"""Lineage: deployment → model version → job → base model → data files → parameters → metrics.

Recorded once at registration (from the job's stage outputs), read back from anywhere.
"""

from __future__ import annotations

from typing import Any

from chattune.catalog.cards import get_card
from chattune.errors import ChattuneError
from chattune.store.jobs import Job


def job_lineage(job: Job) -> dict[str, Any]:
    """Where a job's model came from: job, base model, data files with sha256, spec, metrics."""
    validated = _outputs(job, "validate")
    data_paths = job.spec.get("data") or {}
    rows = validated.get("rows", {})
    data = [
        {"split": split, "path": data_paths.get(split), "sha256": digest, "rows": rows.get(split)}
        for split, digest in validated.get("data_sha256", {}).items()
    ]
    return {
        "job": job.name,
        "mlflow_run_id": job.mlflow_run_id,
        "base_model": validated.get("model"),
        "base": base_model_info(validated.get("model") or job.spec.get("model", "")),
        "data": data,
        # Older records read this key; kept so their lineage stays comparable.
        "data_sha256": validated.get("data_sha256", {}),
        "spec": job.spec,
        "parameters": {k: v["value"] for k, v in job.parameters.items()},
        "metrics": _outputs(job, "evaluate").get("metrics", {}),
    }


def base_model_info(ref: str) -> dict[str, Any]:
    """Name, version and source of a base model reference (``NAME:VERSION``, hf://, folder)."""
    name, _, version = ref.partition(":")
    try:
        card = get_card(name)
    except ChattuneError:
        return {"name": ref, "version": None, "source": ref}
    return {"name": card.name, "version": version or card.version, "source": card.source}


def _outputs(job: Job, stage: str) -> dict[str, Any]:
    return next((s.outputs for s in job.stages if s.name == stage), {})
