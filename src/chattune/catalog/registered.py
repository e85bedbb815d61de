"""Registered models as base models: ``model: my-sft:1`` (or ``my-sft@latest``) in a job.

A job may start from a model this workspace registered (an SFT model to preference-tune,
say): the reference resolves to the transformers folder inside the registered MLflow model,
and the job's lineage names the version as its base, so ``models show --lineage`` walks
SFT parent → this job → data. The catalog sits above the store, so it reads the registered
versions straight from the workspace's store; which workspace is set by the SDK's jobs API
and by the job process (:func:`use_workspace`), else found as every command finds it.
"""

from __future__ import annotations

from pathlib import Path

from chattune.workspace import Workspace

_WORKSPACE: list[Workspace] = []


def use_workspace(ws: Workspace) -> None:
    """The workspace whose registered models job specs may name (the latest set wins)."""
    _WORKSPACE[:] = [ws]


def registered_folder(ref: str) -> Path | None:
    """The transformers folder of registered version ``NAME:VERSION`` / ``NAME@label``, or
    None when no such version is registered (or there is no workspace yet)."""
    import yaml

    from chattune.store import workspace_store

    ws = _WORKSPACE[0] if _WORKSPACE else Workspace.find()
    if not ws.config_path.exists():
        return None  # no workspace here: nothing registered, and nothing to create
    name, version, label = ref, None, "latest"
    if ":" in ref:
        name, version = ref.split(":", 1)
    elif "@" in ref:
        name, label = ref.split("@", 1)
    models = workspace_store(ws).models
    if version is not None:
        found = models.get(name, version)
    else:
        found = next((m for m in models.list(name) if label in m.labels), None)
    if found is None or found.archived:
        return None
    root = Path(found.path)
    mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    return root / mlmodel["flavors"]["python_function"]["artifacts"]["model"]["path"]
