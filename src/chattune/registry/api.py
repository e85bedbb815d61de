"""Models SDK: the foundation catalog and the registry of fine-tuned models.

>>> client.models.get("Phi-3-mini-4k-instruct", label="latest").source
'hf://microsoft/Phi-3-mini-4k-instruct'
>>> client.models.register(job="phi3-ultrachat", name="phi3-ultrachat", version="1")
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from chattune.catalog.cards import CATALOG, ModelCard, get_card
from chattune.errors import ConflictError, NotFoundError, ValidationError
from chattune.store import workspace_store
from chattune.store.jobs import Job
from chattune.store.models import RegisteredModel
from chattune.workspace import Workspace

_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,127}$")

__all__ = ["ModelsAPI", "RegisteredModel"]


class ModelsAPI:
    """``client.models``: catalog cards and registered models."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.store = workspace_store(workspace)

    def catalog(self) -> list[ModelCard]:
        """The built-in foundation models."""
        return list(CATALOG)

    def get(self, name: str, label: str | None = None, version: str | None = None) -> ModelCard:
        """A foundation model card (``label="latest"`` resolves)."""
        return get_card(name, label=label, version=version)

    def is_catalog(self, name: str) -> bool:
        """True when ``name`` is a foundation model of the catalog (not a registered one)."""
        return any(c.name.lower() == name.lower() for c in CATALOG)

    def register(
        self,
        job: str,
        name: str,
        version: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> RegisteredModel:
        """Register a completed job's packaged MLflow model as ``name:version``."""
        _check_name("model name", name)
        done = self.store.jobs.get(job)
        if done.status != "completed" or not done.stage("package").outputs:
            raise ConflictError(
                f"job {job!r} is {done.status}, its model is not packaged",
                f"wait for it with `chattune jobs stream {job}`",
            )
        version = version or self._next_version(name)
        _check_name("version", version)
        dest = self.ws.model_dir(name, version)
        if dest.exists() or self.store.models.get(name, version):
            raise ConflictError(
                f"model {name}:{version} exists already",
                "pick another --version (or omit it for the next number)",
            )
        validated = done.stage("validate").outputs
        model = RegisteredModel(
            name=name,
            version=version,
            path=str(dest),
            job=job,
            base_model=validated.get("model"),
            description=description,
            tags=tags or {},
            labels=["latest"],
            lineage=lineage(done),
            created_at=time.time(),
        )
        self.store.models.insert(model)  # claims name:version (a racing register gets 409)
        try:
            _copy_atomically(Path(done.stage("package").outputs["mlflow_model_folder"]), dest)
        except BaseException:
            self.store.models.delete(name, version)
            raise
        return self.show(name, version)

    def list(self, name: str | None = None) -> list[RegisteredModel]:
        """Registered model versions (newest first), optionally of one name."""
        return self.store.models.list(name)

    def show(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> RegisteredModel:
        """One registered version: by version, by label (``latest``), or the latest."""
        if version is not None:
            found = self.store.models.get(name, version)
        else:
            labelled = [m for m in self.list(name) if (label or "latest") in m.labels]
            found = labelled[0] if labelled else None
        if found is None:
            known = sorted({m.name for m in self.list()})
            wanted = f"{name}:{version}" if version else f"{name}@{label or 'latest'}"
            raise NotFoundError(
                f"unknown model {wanted}: not in the catalog and not registered",
                f"registered: {', '.join(known) or 'none'}; register one with "
                "`chattune models register --job JOB --name NAME`",
            )
        return found

    def resolve_for_serving(self, ref: str) -> tuple[str, Path]:
        """``NAME:VERSION`` or ``NAME@label`` → (canonical ref, transformers folder)."""
        if ":" in ref:
            name, version = ref.split(":", 1)
            model = self.show(name, version=version)
        else:
            name, _, label = ref.partition("@")
            model = self.show(name, label=label or "latest")
        return model.ref, hf_folder(model.path)

    def _next_version(self, name: str) -> str:
        numbers = [int(m.version) for m in self.list(name) if m.version.isdigit()]
        return str(max(numbers, default=0) + 1)


def lineage(job: Job) -> dict[str, Any]:
    """Where a registered model came from: job, base model, data hashes, spec, metrics."""
    validated = job.stage("validate").outputs
    return {
        "job": job.name,
        "base_model": validated.get("model"),
        "spec": job.spec,
        "parameters": {k: v["value"] for k, v in job.parameters.items()},
        "data_sha256": validated.get("data_sha256", {}),
        "mlflow_run_id": job.mlflow_run_id,
        "metrics": job.stage("evaluate").outputs.get("metrics", {}),
    }


def hf_folder(mlflow_model_folder: str | Path) -> Path:
    """The transformers folder inside a registered MLflow model (what serving loads)."""
    import yaml

    root = Path(mlflow_model_folder)
    mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    return root / mlmodel["flavors"]["python_function"]["artifacts"]["model"]["path"]


def _check_name(what: str, value: str) -> None:
    if not _NAME.match(value):
        raise ValidationError(
            f"{what} {value!r} is not valid",
            "use letters, digits, '-', '_' or '.' (max 128; e.g. a timestamp for a version)",
        )


def _copy_atomically(source: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    tmp.replace(dest)
