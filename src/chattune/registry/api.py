"""Models SDK: the foundation catalog and the registry of fine-tuned models.

>>> client.models.get("Phi-3-mini-4k-instruct", label="latest").source
'hf://microsoft/Phi-3-mini-4k-instruct'
>>> client.models.register(job="phi3-ultrachat", name="phi3-ultrachat", version="1")
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chattune.catalog.cards import CATALOG, ModelCard, get_card
from chattune.errors import ConflictError, NotFoundError, ValidationError
from chattune.workspace import Workspace, dumps

_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,127}$")


@dataclass
class RegisteredModel:
    """A fine-tuned model version in the registry, with its lineage."""

    name: str
    version: str
    path: str
    job: str | None
    base_model: str | None
    description: str
    tags: dict[str, str]
    labels: list[str]
    lineage: dict[str, Any]
    created_at: float

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ref": self.ref}


class ModelsAPI:
    """``client.models``: catalog cards and registered models."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def catalog(self) -> list[ModelCard]:
        """The built-in foundation models."""
        return list(CATALOG)

    def get(self, name: str, label: str | None = None, version: str | None = None) -> ModelCard:
        """A foundation model card (``label="latest"`` resolves)."""
        return get_card(name, label=label, version=version)

    def register(
        self,
        job: str,
        name: str,
        version: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> RegisteredModel:
        """Register a completed job's packaged MLflow model as ``name:version``."""
        from chattune.jobs.api import JobsAPI

        if not _NAME.match(name):
            raise ValidationError(
                f"model name {name!r} is not valid",
                "use letters, digits, '-', '_' or '.' (max 128)",
            )
        done = JobsAPI(self.ws).get(job)
        if done.status != "completed" or not done.stage("package").outputs:
            raise ConflictError(
                f"job {job!r} is {done.status}, its model is not packaged",
                f"wait for it with `chattune jobs stream {job}`",
            )
        version = version or self._next_version(name)
        if not _NAME.match(version):
            raise ValidationError(
                f"version {version!r} is not valid",
                "use letters, digits, '-', '_' or '.' (e.g. a timestamp)",
            )
        source = Path(done.stage("package").outputs["mlflow_model_folder"])
        dest = self.ws.model_dir(name, version)
        if dest.exists() or self._row(name, version):
            raise ConflictError(
                f"model {name}:{version} exists already",
                "pick another --version (or omit it for the next number)",
            )
        tmp = dest.with_name(f".{version}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        tmp.replace(dest)
        evaluate = done.stage("evaluate").outputs.get("metrics", {})
        validate = done.stage("validate").outputs
        lineage = {
            "job": job,
            "base_model": validate.get("model"),
            "spec": done.spec,
            "data_sha256": validate.get("data_sha256", {}),
            "mlflow_run_id": done.mlflow_run_id,
            "metrics": evaluate,
        }
        with self.ws.db() as conn:
            conn.execute("UPDATE models SET labels = '[]' WHERE name = ?", (name,))
            conn.execute(
                "INSERT INTO models (name, version, path, job, base_model, description, tags, "
                "labels, lineage, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    name,
                    version,
                    str(dest),
                    job,
                    validate.get("model"),
                    description,
                    dumps(tags or {}),
                    dumps(["latest"]),
                    dumps(lineage),
                    time.time(),
                ),
            )
        return self.show(name, version)

    def list(self, name: str | None = None) -> list[RegisteredModel]:
        """Registered model versions (newest first), optionally of one name."""
        query = "SELECT * FROM models" + (" WHERE name = ?" if name else "")
        with self.ws.db() as conn:
            rows = conn.execute(
                query + " ORDER BY created_at DESC", (name,) if name else ()
            ).fetchall()
        return [_model(r) for r in rows]

    def show(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> RegisteredModel:
        """One registered version: by version, by label (``latest``), or the latest."""
        if version is not None:
            row = self._row(name, version)
        else:
            label = label or "latest"
            candidates = [m for m in self.list(name) if label in m.labels]
            row = None
            if candidates:
                return candidates[0]
        if row is None:
            known = sorted({m.name for m in self.list()})
            wanted = f"{name}:{version}" if version else f"{name}@{label or 'latest'}"
            raise NotFoundError(
                f"unknown model {wanted}: not in the catalog and not registered",
                f"registered: {', '.join(known) or 'none'}; register one with "
                "`chattune models register --job JOB --name NAME`",
            )
        return _model(row)

    def resolve_for_serving(self, ref: str) -> tuple[str, Path]:
        """``NAME:VERSION`` or ``NAME@label`` → (canonical ref, transformers folder)."""
        from chattune.train.package import hf_folder

        if ":" in ref:
            name, version = ref.split(":", 1)
            model = self.show(name, version=version)
        else:
            name, _, label = ref.partition("@")
            model = self.show(name, label=label or "latest")
        return model.ref, hf_folder(model.path)

    def _row(self, name: str, version: str) -> Any:
        with self.ws.db() as conn:
            return conn.execute(
                "SELECT * FROM models WHERE name = ? AND version = ?", (name, version)
            ).fetchone()

    def _next_version(self, name: str) -> str:
        numbers = [int(m.version) for m in self.list(name) if m.version.isdigit()]
        return str(max(numbers, default=0) + 1)


def _model(row: Any) -> RegisteredModel:
    return RegisteredModel(
        name=row["name"],
        version=row["version"],
        path=row["path"],
        job=row["job"],
        base_model=row["base_model"],
        description=row["description"],
        tags=json.loads(row["tags"]),
        labels=json.loads(row["labels"]),
        lineage=json.loads(row["lineage"]),
        created_at=row["created_at"],
    )
