"""A job whose process was killed is shown failed by the next command that sees the dead
pid, and its MLflow run is closed then too (it stayed RUNNING until a resume, 5 of 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow

from chattune import Client
from chattune.store import workspace_store
from chattune.workspace import Workspace


def test_the_next_command_closes_a_killed_jobs_mlflow_run(tmp_path: Path) -> None:
    client = Client(workspace=tmp_path / "ws")
    ws = Workspace.find(tmp_path / "ws")
    runs = mlflow.MlflowClient(tracking_uri=ws.mlflow_uri)
    experiment = runs.create_experiment("e", artifact_location=ws.artifact_root)
    run_id = runs.create_run(experiment).info.run_id
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = workspace_store(ws).jobs
    store.insert("killed", "e", {}, ["validate", "finetune"])
    store.update("killed", status="running", pid=dead.pid, mlflow_run_id=run_id)
    store.update_stage("killed", "validate", status="running")
    assert runs.get_run(run_id).info.status == "RUNNING"

    job = client.jobs.get("killed")

    assert job.status == "failed" and "died" in (job.error or "")
    assert runs.get_run(run_id).info.status == "FAILED"
    assert client.jobs.get("killed").status == "failed"  # and stays so
