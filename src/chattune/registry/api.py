"""Models SDK: the foundation catalog and the registry of fine-tuned models.

>>> client.models.get("Phi-3-mini-4k-instruct", label="latest").source
'hf://microsoft/Phi-3-mini-4k-instruct'
>>> client.models.register(job="phi3-ultrachat", name="phi3-ultrachat", version="1")
>>> client.models.label("phi3-ultrachat", "1", "prod")
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

from chattune.catalog.cards import CATALOG, ModelCard, get_card
from chattune.errors import (
    ChattuneError,
    ConflictError,
    NotFoundError,
    RuntimeFailure,
    ValidationError,
)
from chattune.registry import versions
from chattune.registry.lineage import job_lineage
from chattune.registry.mlflow_registry import MlflowRegistry
from chattune.store import workspace_store
from chattune.store.models import RegisteredModel
from chattune.workspace import Workspace

# Used with fullmatch: `$` also matches before a final newline ("x\n" would pass).
_NAME = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9_.]{0,127}")
_LABEL = re.compile(r"[a-zA-Z][-a-zA-Z0-9_]{0,63}")

__all__ = ["ModelsAPI", "RegisteredModel"]


class ModelsAPI:
    """``client.models``: catalog cards and registered models."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.store = workspace_store(workspace)
        self.mlflow = MlflowRegistry(workspace)

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
        """Register a completed job's packaged MLflow model as ``name:version``.

        Also an MLflow registered model version (``models:/NAME@latest`` loads it). The
        folder hard-links the job's files: no second copy of the weights.
        """
        _check_name("model name", name)
        if version is not None:
            _check_name("version", version)
        done = self.store.jobs.get(job)
        if done.status != "completed" or not done.stage("package").outputs:
            raise ConflictError(
                f"job {job!r} is {done.status}, its model is not packaged",
                f"wait for it with `chattune jobs stream {job}`",
            )
        source = Path(done.stage("package").outputs["mlflow_model_folder"])
        staging = versions.stage(self.ws, name, source)
        try:
            with versions.name_lock(self.ws, name):
                taken = [m.version for m in self.store.models.list(name, archived=True)]
                version = version or versions.next_version(self.ws, name, taken)
                if version in taken:
                    raise _exists(name, version)
                model = RegisteredModel(
                    name=name,
                    version=version,
                    path=str(self.ws.model_dir(name, version)),
                    job=job,
                    base_model=done.stage("validate").outputs.get("model"),
                    description=description,
                    tags=tags or {},
                    labels=["latest"],
                    lineage=job_lineage(done),
                    created_at=time.time(),
                )
                self._mirror_missing(name)  # versions a killed register left out of MLflow
                self._claim(staging, model)
                self._mirror(model, done.mlflow_run_id, undo=True)
        finally:
            versions.discard(staging)
        return self.show(name, version)

    def _claim(self, staging: Path, model: RegisteredModel) -> None:
        dest = Path(model.path)
        versions.place(staging, dest)  # complete before its row makes it visible
        try:
            self.store.models.insert(model)
        except BaseException:
            versions.discard(dest)
            raise

    def _mirror(self, model: RegisteredModel, run_id: str | None, undo: bool) -> None:
        try:
            number = self.mlflow.add_version(model, run_id)
        except Exception as exc:
            if undo:  # a version MLflow does not have is not registered
                self.store.models.delete(model.name, model.version)
                versions.discard(Path(model.path))
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RuntimeFailure(
                f"MLflow registry {self.ws.mlflow_uri}: {first}",
                "check that the MLflow database is reachable, then register again",
            ) from None
        self.store.models.update(model.name, model.version, mlflow_version=number)

    def _mirror_missing(self, name: str) -> None:
        for model in reversed(self.list(name, archived=True)):  # oldest first
            if model.mlflow_version is None:
                self._mirror(model, model.lineage.get("mlflow_run_id"), undo=False)

    def list(self, name: str | None = None, archived: bool = False) -> list[RegisteredModel]:
        """Registered model versions (newest first); archived ones only with ``archived``."""
        return self.store.models.list(name, archived=archived)

    def show(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> RegisteredModel:
        """One registered version: by version (archived too), by label, or the latest."""
        if version is not None:
            found = self.store.models.get(name, version)
        else:
            labelled = [m for m in self.list(name) if (label or "latest") in m.labels]
            found = labelled[0] if labelled else None
        if found is None:
            known = sorted({m.name for m in self.list()})
            wanted = f"{name}:{version}" if version else f"{name}@{label or 'latest'}"
            wanted = wanted if wanted.isprintable() else repr(wanted)  # one line, always
            raise NotFoundError(
                f"unknown model {wanted}: not in the catalog and not registered",
                f"registered: {', '.join(known) or 'none'}; register one with "
                "`chattune models register --job JOB --name NAME`",
            )
        return found

    def resolve(self, ref: str) -> RegisteredModel:
        """``NAME:VERSION`` or ``NAME@label`` (``NAME`` alone: latest) → the version."""
        if ":" in ref:
            name, version = ref.split(":", 1)
            return self.show(name, version=version)
        name, _, label = ref.partition("@")
        return self.show(name, label=label or "latest")

    def resolve_for_serving(self, ref: str) -> tuple[str, Path]:
        """``NAME:VERSION`` or ``NAME@label`` → (canonical ref, transformers folder)."""
        model = self.resolve(ref)
        return model.ref, hf_folder(model.path)

    def label(self, name: str, version: str, label: str) -> RegisteredModel:
        """Put ``label`` on ``name:version`` (it leaves the version that had it)."""
        if not _LABEL.fullmatch(label):
            raise ValidationError(
                f"label {label!r} is not valid", "use a letter, then letters, digits, '-', '_'"
            )
        model = self.show(name, version)
        self.store.models.set_label(name, version, label)
        if model.mlflow_version:
            self.mlflow.set_alias(name, model.mlflow_version, label)
        return self.show(name, version)

    def unlabel(self, name: str, version: str, label: str) -> RegisteredModel:
        """Take ``label`` off ``name:version``."""
        self.show(name, version)
        if not self.store.models.remove_label(name, version, label):
            raise NotFoundError(
                f"model {name}:{version} has no label {label!r}",
                f"see its labels with `chattune models show {name} --version {version}`",
            )
        self.mlflow.delete_alias(name, label)
        return self.show(name, version)

    def archive(self, name: str, version: str, archived: bool = True) -> RegisteredModel:
        """Hide ``name:version`` from lists (still deployable by its version); or restore it."""
        model = self.show(name, version)
        self.store.models.update(name, version, archived=archived)
        if model.mlflow_version:
            self.mlflow.set_tag(name, model.mlflow_version, "chattune.archived", str(archived))
        return self.show(name, version)

    def delete(self, name: str, version: str) -> None:
        """Delete ``name:version``; refused while a deployment serves it."""
        from chattune.registry.lifecycle import check_not_served, move_latest

        model = self.show(name, version)
        check_not_served(self.store, model)
        with versions.name_lock(self.ws, name):
            self.store.models.delete(name, version)
            versions.discard(Path(model.path))
            move_latest(self.store, name)
        if model.mlflow_version:
            self.mlflow.delete_version(name, model.mlflow_version)

    def export(
        self, name: str, version: str, fmt: str, to: str | Path, gguf_type: str = "f16"
    ) -> Path:
        """Write ``name:version`` to folder ``to`` as ``merged``, ``adapter`` or ``gguf``.

        ``client.models.export("tiny-chat", "1", "gguf", "out/")`` → out/model-f16.gguf +
        out/Modelfile (``ollama create tiny-chat -f out/Modelfile``).
        """
        from chattune.registry.export import export

        model = self.show(name, version)
        adapter = None
        if model.job:
            with contextlib.suppress(ChattuneError, KeyError):
                package = self.store.jobs.get(model.job).stage("package").outputs
                adapter = Path(package["pytorch_model_folder"]) / "final"
        return export(hf_folder(model.path), adapter, fmt, Path(to).resolve(), gguf_type)

    def lineage(self, name: str, version: str) -> dict[str, Any]:
        """Model version → job → base model → data files (sha256) → parameters → metrics."""
        from chattune.registry.lifecycle import model_lineage

        return model_lineage(self.show(name, version))

    def endpoint_lineage(self, endpoint: str) -> dict[str, Any]:
        """Each deployment of ``endpoint`` with its model version's lineage."""
        from chattune.registry.lifecycle import endpoint_lineage

        return endpoint_lineage(self.store, endpoint, self.resolve)


def hf_folder(mlflow_model_folder: str | Path) -> Path:
    """The transformers folder inside a registered MLflow model (what serving loads)."""
    import yaml

    root = Path(mlflow_model_folder)
    mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    return root / mlmodel["flavors"]["python_function"]["artifacts"]["model"]["path"]


def _exists(name: str, version: str) -> ConflictError:
    return ConflictError(
        f"model {name}:{version} exists already",
        "pick another --version (or omit it for the next number)",
    )


def _check_name(what: str, value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ValidationError(
            f"{what} {value!r} is not valid",
            "use letters, digits, '-', '_' or '.' (max 128; e.g. a timestamp for a version)",
        )
