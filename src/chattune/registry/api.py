"""Models SDK: the foundation catalog and the registry of fine-tuned models.

>>> client.models.get("Phi-3-mini-4k-instruct", label="latest").source
'hf://microsoft/Phi-3-mini-4k-instruct'
>>> client.models.register(job="phi3-ultrachat", name="phi3-ultrachat", version="1")
>>> client.models.label("phi3-ultrachat", "1", "prod")
"""

from __future__ import annotations

import builtins
import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chattune.catalog.cards import CATALOG, ModelCard, get_card
from chattune.errors import (
    ChattuneError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from chattune.registry import consistency, versions
from chattune.registry.lineage import job_lineage, stage_result
from chattune.registry.mlflow_registry import MlflowRegistry
from chattune.store import workspace_store
from chattune.store.jobs import Job
from chattune.store.models import ModelState, RegisteredModel
from chattune.train import faults
from chattune.train.results import Packaged
from chattune.workspace import Workspace

if TYPE_CHECKING:
    from chattune.registry.compare import Comparison
    from chattune.registry.promote import Promotion

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
        folder hard-links the job's files: no second copy of the weights. Killed at any
        moment, the next registry command finishes or undoes it (docs/registry.md).
        """
        _check_name("model name", name)
        if version is not None:
            _check_name("version", version)
        done = self.store.jobs.get(job)
        package = stage_result(done, "package", Packaged)
        if done.status != "completed" or package is None:
            raise ConflictError(
                f"job {job!r} is {done.status}, its model is not packaged",
                f"wait for it with `chattune jobs stream {job}`",
            )
        staging = versions.stage(self.ws, name, Path(package.mlflow_model_folder))
        faults.hit("register:staged")
        try:
            with versions.name_lock(self.ws, name):
                consistency.settle_name(self.store, self.mlflow, name)  # killed ones' leftovers
                model = self._record(done, name, version, description, tags or {})
                faults.hit("register:recorded")
                versions.place(staging, Path(model.path))  # the commit point
                faults.hit("register:placed")
                self._commit(model)
        finally:
            versions.discard(staging)
        return self.show(name, model.version)

    def _record(
        self, done: Job, name: str, version: str | None, description: str, tags: dict[str, str]
    ) -> RegisteredModel:
        """The new version's row, ``pending`` (not listed); the name's lock is held."""
        taken = [m.version for m in self.store.models.list(name, archived=True, every_state=True)]
        version = version or versions.next_version(self.ws, name, taken)
        if version in taken:
            raise _exists(name, version)
        lineage = job_lineage(done)
        model = RegisteredModel(
            name=name,
            version=version,
            path=str(self.ws.model_dir(name, version)),
            job=done.name,
            base_model=lineage.base_model,
            description=description,
            tags=tags,
            labels=[],
            lineage=lineage.model_dump(mode="json"),
            created_at=time.time(),
            state=ModelState.PENDING,
        )
        versions.discard(Path(model.path))  # a folder no row owns (left by an older chattune)
        self.store.models.insert(model)
        return model

    def _commit(self, model: RegisteredModel) -> None:
        try:
            consistency.finish(self.store, self.mlflow, model)
        except ChattuneError:  # a version MLflow does not have is not registered
            with contextlib.suppress(ChattuneError):
                consistency.roll_back(self.store, self.mlflow, model)
            raise

    def _settle(self, name: str | None = None) -> None:
        consistency.settle(self.ws, self.store, self.mlflow, name)

    def list(self, name: str | None = None, archived: bool = False) -> list[RegisteredModel]:
        """Registered model versions (newest first); archived ones only with ``archived``."""
        self._settle(name)
        return self.store.models.list(name, archived=archived)

    def show(
        self, name: str, version: str | None = None, label: str | None = None
    ) -> RegisteredModel:
        """One registered version: by version (archived too), by label, or the latest."""
        self._settle(name)
        if version is not None:
            found = self.store.models.get(name, version)
            found = found if found and found.state == ModelState.READY else None
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
            current = self.store.models.get(name, version)
            if current is None or current.state != ModelState.READY:
                return  # deleted meanwhile by another command
            self.store.models.mark_deleting(name, version)  # unlisted from here on
            move_latest(self.store, name)
            faults.hit("delete:marked")
            consistency.remove(self.store, self.mlflow, current)

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
            with contextlib.suppress(ChattuneError):
                package = stage_result(self.store.jobs.get(model.job), "package", Packaged)
                adapter = Path(package.pytorch_model_folder) / "final" if package else None
        return export(hf_folder(model.path), adapter, fmt, Path(to).resolve(), gguf_type)

    def compare(
        self,
        a: str,
        b: str = "base",
        data: str | Path | None = None,
        samples: int = 3,
        mlflow: bool = True,
    ) -> Comparison:
        """Two registered versions (``NAME:VERSION`` or ``NAME@label``), or a version and
        ``base`` (its base model), on the same held-out conversations (``data``, else the
        first one's job's test split): loss, perplexity, token accuracy, ROUGE-L, BLEU,
        answer length, latency and ``samples`` answers side by side. The report (Markdown,
        HTML, figure) goes to ``comparisons/`` in the workspace and into an MLflow run.

        >>> client.models.compare("tiny-chat:1", "tiny-chat:2").better("test_loss")
        """
        from chattune.registry import gating

        return gating.compare(self, a, b, data, samples, mlflow)

    def promote(
        self,
        ref: str,
        label: str,
        gates: builtins.list[str] | None = None,
        force: bool = False,
        data: str | Path | None = None,
    ) -> Promotion:
        """Move ``label`` to ``ref`` when every gate holds (default: test loss not worse
        than the version holding ``label`` now, and better than the base). A refused
        promotion raises a one-line ConflictError naming the failed gates and by how much;
        ``force`` moves the label anyway and records a warning in the version's history.
        """
        from chattune.registry import gating

        return gating.promote(self, ref, label, gates, force, data)

    def history(self, name: str, version: str) -> builtins.list[dict[str, Any]]:
        """What happened to ``name:version`` (promotions, forced ones with their warning)."""
        from chattune.store.resources import ModelEventStore

        self.show(name, version)
        return ModelEventStore(self.store.db).list(name, version)

    def lineage(self, name: str, version: str) -> dict[str, Any]:
        """Model version → job → base model → data files (sha256) → parameters → metrics."""
        from chattune.registry.lifecycle import model_lineage

        found = model_lineage(self.show(name, version))
        entry, seen = found, {f"{name}:{version}"}
        while entry.get("base_model", {}).get("name") not in seen:  # SFT parent → DPO → ...
            parent = self._registered(entry["base_model"]["name"])
            if parent is None:
                break
            seen.add(parent.ref)
            entry["base_model"] |= {"source": "registered model", "version": parent.version}
            entry["parent"] = model_lineage(parent)
            entry = entry["parent"]
        return found

    def _registered(self, ref: str | None) -> RegisteredModel | None:
        """The registered version a base-model reference names, if it names one."""
        if not ref or self.is_catalog(ref.split(":")[0].split("@")[0]):
            return None
        try:
            return self.resolve(ref)
        except NotFoundError:
            return None

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
