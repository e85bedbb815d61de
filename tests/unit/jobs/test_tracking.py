"""Jobs starting together on a new workspace must not race on MLflow's first migration."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from chattune.jobs.spec import parse_spec
from chattune.jobs.tracking import Tracker
from chattune.workspace import Workspace


def _start_run(root: str, name: str) -> None:
    spec = parse_spec({"name": name, "model": "tiny-random-phi3", "data": {"train": "t"}})
    Tracker(Workspace.init(root), spec, None)


def test_three_jobs_start_their_runs_at_once_on_a_new_workspace(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_start_run, args=(str(tmp_path), f"j{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    import mlflow

    client = mlflow.MlflowClient(Workspace(tmp_path).mlflow_connect_uri)
    exp = client.get_experiment_by_name("chat_completion_tiny-random-phi3")
    assert len(client.search_runs([exp.experiment_id])) == 3


def test_data_hashes_in_mlflow_are_what_sha256sum_prints(tmp_path: Path) -> None:
    import subprocess

    from chattune.jobs.runner import data_digests

    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    spec = parse_spec({"name": "h", "model": "tiny-random-phi3", "data": {"train": str(train)}})
    tracker = Tracker(Workspace.init(tmp_path / "ws"), spec, None)
    tracker.log_data(spec.data.model_dump(), data_digests(spec))
    params = tracker.client.get_run(tracker.run_id).data.params
    printed = subprocess.run(["sha256sum", str(train)], capture_output=True, text=True, check=True)
    assert params["data.train.sha256"] == printed.stdout.split()[0]
    assert params["data.train.path"] == str(train)
