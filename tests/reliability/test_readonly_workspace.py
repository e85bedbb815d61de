"""A workspace that turned read-only mid-job (a remount, a full disk): every command says so
in one line; `jobs show` used to print a multi-line MlflowException with the SQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from chattune import Client
from chattune.store import workspace_store
from chattune.workspace import Workspace
from tests.e2e.cli import chattune


@pytest.fixture
def readonly_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "ws"
    Client(workspace=root)
    ws = Workspace.find(root)
    runs = mlflow.MlflowClient(tracking_uri=ws.mlflow_uri)
    run_id = runs.create_run(runs.create_experiment("e", ws.artifact_root)).info.run_id
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = workspace_store(ws).jobs
    store.insert("killed", "e", {}, ["validate"])
    store.update("killed", status="running", pid=dead.pid, mlflow_run_id=run_id)
    bind = subprocess.run(["mount", "--bind", str(root), str(root)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = ["mount", "-o", "remount,ro,bind", str(root)]
        if subprocess.run(ro, capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        monkeypatch.setenv("CHATTUNE_WORKSPACE", str(root))
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=True)


@pytest.mark.parametrize(
    "command",
    [["jobs", "show", "killed"], ["jobs", "list"], ["jobs", "show", "killed", "--metrics"]],
)
def test_a_read_only_workspace_is_one_line(readonly_workspace: Path, command: list[str]) -> None:
    done = chattune(*command, check=False, timeout=60)
    said = done.stderr.strip()
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    assert "not writable" in said, said
