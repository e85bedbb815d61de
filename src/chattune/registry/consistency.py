"""One state across a version's three parts: store row (the truth), folder, MLflow version.

A register writes the row ``pending`` (not listed), renames its staged folder into place —
the commit point — makes the MLflow version (idempotent: found by its tags), then marks the
row ``ready``. A delete marks the row ``deleting`` (not listed), removes the MLflow version,
the folder, then the row. A command killed anywhere leaves a row that is not ``ready``;
the next registry command settles it, holding the model name's lock:

- ``pending`` with its folder in place → rolled forward (MLflow version made, row ready);
- ``pending`` without its folder → rolled back (MLflow version if any, row removed);
- ``deleting`` → the delete is finished.

Every step is safe to repeat, so a settle killed in turn is settled by the next command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from chattune.errors import ChattuneError, RuntimeFailure
from chattune.registry import versions
from chattune.registry.lifecycle import move_latest
from chattune.registry.mlflow_registry import MlflowRegistry
from chattune.store import Store
from chattune.store.models import ModelState, RegisteredModel
from chattune.train import faults
from chattune.workspace import Workspace

T = TypeVar("T")


def finish(store: Store, mlflow: MlflowRegistry, model: RegisteredModel) -> None:
    """Roll a pending version (folder in place) forward: MLflow version, then ready."""
    run_id = model.lineage.get("mlflow_run_id")
    number = on_mlflow(mlflow, lambda: mlflow.ensure_version(model, run_id))
    faults.hit("register:synced")
    store.models.mark_ready(model.name, model.version, number, ["latest"])
    faults.hit("register:ready")


def roll_back(store: Store, mlflow: MlflowRegistry, model: RegisteredModel) -> None:
    """Undo a pending version: folder first (the decision), MLflow's version, the row."""
    versions.discard(Path(model.path))
    faults.hit("register:rollback")
    on_mlflow(mlflow, lambda: mlflow.remove_version(model.name, model.version))
    store.models.delete(model.name, model.version)


def remove(store: Store, mlflow: MlflowRegistry, model: RegisteredModel) -> None:
    """Finish a delete (row ``deleting``): MLflow's version, the folder, the row."""
    on_mlflow(mlflow, lambda: mlflow.remove_version(model.name, model.version))
    faults.hit("delete:mlflow_removed")
    versions.discard(Path(model.path))
    faults.hit("delete:folder_removed")
    store.models.delete(model.name, model.version)
    move_latest(store, model.name)


def settle_name(store: Store, mlflow: MlflowRegistry, name: str) -> None:
    """Settle every unfinished version of ``name``; the caller holds the name's lock."""
    for model in store.models.unsettled(name):
        if model.state == ModelState.DELETING:
            remove(store, mlflow, model)
        elif Path(model.path).is_dir():
            finish(store, mlflow, model)
        else:
            roll_back(store, mlflow, model)


def settle(ws: Workspace, store: Store, mlflow: MlflowRegistry, name: str | None = None) -> None:
    """What killed commands left (of ``name``, or all), settled where no command of that
    name runs now. One query when there is nothing to do; never raises for a settle that
    cannot finish now (MLflow unreachable): its version stays unlisted until one can."""
    names = {m.name for m in store.models.unsettled(name)} | versions.with_leftovers(ws, name)
    for each in sorted(names):
        with versions.try_name_lock(ws, each) as mine:
            if mine:
                with contextlib.suppress(ChattuneError):
                    settle_name(store, mlflow, each)


def on_mlflow(mlflow: MlflowRegistry, call: Callable[[], T]) -> T:
    """``call`` with MLflow's errors as one line naming the registry."""
    try:
        return call()
    except ChattuneError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeFailure(
            f"MLflow registry {mlflow.ws.mlflow_uri}: {first}",
            "check that the MLflow database is reachable, then run the command again",
        ) from None
