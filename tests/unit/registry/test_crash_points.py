"""Kill -9 at every point of `models register` and `models delete`, then any next registry
command: the store, the version folders and MLflow's registry agree, with no repair step.

The kills are real SIGKILLs at named fault points (``CHATTUNE_FAULT``), in a process forked
from this one, so each lands exactly between two steps.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import BOTH_DATABASES

from chattune import Client
from chattune.registry.api import hf_folder
from chattune.train import faults

pytestmark = [pytest.mark.reliability, BOTH_DATABASES]  # PostgreSQL: `make test-all`

# Each point, and whether the killed register's version exists once settled: before the
# folder's rename (the commit point) it is rolled back, after it rolled forward.
REGISTER_POINTS = {
    "register:staged": False,
    "register:recorded": False,
    "register:placed": True,
    "register:mlflow_created": True,
    "register:synced": True,
    "register:ready": True,
}
DELETE_POINTS = ("delete:marked", "delete:mlflow_removed", "delete:folder_removed")


def _next_commands(job: str, name: str) -> dict[str, Callable[[Client], object]]:
    return {
        "list": lambda c: c.models.list(),
        "show": lambda c: c.models.show(name),
        "resolve": lambda c: c.models.resolve(f"{name}@latest"),
        "label": lambda c: c.models.label(name, "1", "prod"),
        "register": lambda c: c.models.register(job=job, name=name),
        "delete": lambda c: c.models.delete(name, "1"),
    }


COMMANDS = ("list", "show", "resolve", "label", "register", "delete")


def _killed_child(workspace: Path, point: str, call: Callable[[Client], object]) -> None:
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_run_with_fault, args=(str(workspace), point, call))
    proc.start()
    proc.join(timeout=240)
    assert proc.exitcode == -signal.SIGKILL, f"{point}: exit {proc.exitcode}, not killed there"


def _run_with_fault(workspace: str, point: str, call: Callable[[Client], object]) -> None:
    import gc

    from sqlalchemy.engine import Engine

    import chattune.store as store

    store._OPEN.clear()  # a forked child opens its own database connections ...
    for engine in [o for o in gc.get_objects() if isinstance(o, Engine)]:
        engine.dispose(close=False)  # ... never the parent's (MLflow's PostgreSQL pool)
    os.environ[faults.ENV] = point
    call(Client(workspace))


def consistent(workspace: Path, name: str) -> set[str]:
    """The versions of ``name``, checked equal in the store, on disk and in MLflow."""
    import mlflow

    client = Client(workspace)
    store = client.models.store
    assert store.models.unsettled() == []
    rows = {m.version: m for m in store.models.list(name, archived=True)}
    root = workspace / "models" / name
    names = [p.name for p in root.iterdir()] if root.exists() else []
    on_disk = {n for n in names if not n.startswith(".")}
    leftovers = [n for n in names if n.startswith(".staging-")]
    assert (on_disk, leftovers) == (set(rows), [])
    in_mlflow = mlflow.MlflowClient(tracking_uri=client.models.ws.mlflow_uri)
    found = in_mlflow.search_model_versions(f"name='{name}'") if rows else []
    assert {v.tags["chattune.version"]: str(v.version) for v in found} == {
        v: m.mlflow_version for v, m in rows.items()
    }
    for model in rows.values():
        assert (hf_folder(model.path) / "config.json").is_file()
    assert sum("latest" in m.labels for m in rows.values()) == (1 if rows else 0)
    return set(rows)


def test_register_killed_at_each_point_then_the_next_command_settles_it(
    workspace: Path, completed_job: str
) -> None:
    # One workspace (MLflow's database is made once), one model name per point; each
    # point is followed by another kind of command.
    for i, point in enumerate(REGISTER_POINTS):
        command = COMMANDS[i % len(COMMANDS)]
        _register_killed_then(workspace, completed_job, point, command, f"m{i}")


@pytest.mark.slow
@pytest.mark.parametrize(("point", "command"), list(itertools.product(REGISTER_POINTS, COMMANDS)))
def test_register_killed_at_each_point_then_every_command(
    workspace: Path, completed_job: str, point: str, command: str
) -> None:
    _register_killed_then(workspace, completed_job, point, command, "m")


def _register_killed_then(workspace: Path, job: str, point: str, command: str, name: str) -> None:
    Client(workspace).models.register(job=job, name=name)  # version 1 exists before the kill
    _killed_child(workspace, point, lambda c: c.models.register(job=job, name=name))
    _next_commands(job, name)[command](Client(workspace))
    expected = {"1", "2"} if REGISTER_POINTS[point] else {"1"}
    if command == "register":
        expected.add(str(len(expected) + 1))
    if command == "delete":
        expected.discard("1")
    assert consistent(workspace, name) == expected, (point, command)
    Client(workspace).models.list()  # settling again changes nothing
    assert consistent(workspace, name) == expected, (point, command)


def test_delete_killed_at_each_point_then_the_next_command_finishes_it(
    workspace: Path, completed_job: str
) -> None:
    models = Client(workspace).models
    for point in DELETE_POINTS:
        name = f"d-{point.split(':')[1]}"
        models.register(job=completed_job, name=name)
        models.register(job=completed_job, name=name)
        _killed_child(workspace, point, lambda c, n=name: c.models.delete(n, "2"))
        assert [m.version for m in Client(workspace).models.list(name)] == ["1"], point
        assert consistent(workspace, name) == {"1"}, point
        assert Client(workspace).models.show(name).version == "1"  # latest moved back


def test_a_register_mlflow_refuses_is_rolled_back_everywhere(
    workspace: Path, completed_job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chattune.errors import RuntimeFailure
    from chattune.registry.mlflow_registry import MlflowRegistry

    models = Client(workspace).models
    models.register(job=completed_job, name="m")

    def refuse(*_args: object) -> str:
        raise OSError("MLflow database is gone")

    monkeypatch.setattr(MlflowRegistry, "ensure_version", refuse)
    with pytest.raises(RuntimeFailure, match=r"MLflow registry .*: MLflow database is gone"):
        models.register(job=completed_job, name="m")
    monkeypatch.undo()
    assert consistent(workspace, "m") == {"1"}
