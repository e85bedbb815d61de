"""A job for a Ray target: relative data paths are resolved here (not in the Ray head's
working folder), and paths the cluster cannot see are refused before anything is submitted
or stored. The cluster's view is faked here; tests/integration/test_ray_jobs.py asks a real
head (marker ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chattune import Client
from chattune.compute import ray_jobs
from chattune.errors import ValidationError
from chattune.store import workspace_store
from chattune.store.compute import TargetRecord
from chattune.workspace import Workspace

ROW = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'


@pytest.fixture
def cluster(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A `ray` target whose cluster sees only what ``seen["hidden"]`` does not list."""
    store = workspace_store(Workspace.find(workspace))
    store.compute.insert(TargetRecord(name="cluster", type="ray", address="http://head:8265"))
    seen: dict[str, Any] = {"hidden": set(), "asked": [], "submitted": []}

    def missing_paths(address: str, paths: list[str], *, python: str) -> list[str]:
        seen["asked"].append(paths)
        return [p for p in paths if p in seen["hidden"]]

    def submit(address: str, entrypoint: list[str], **kwargs: Any) -> str:
        seen["submitted"].append(entrypoint)
        return str(kwargs["submission_id"])

    monkeypatch.setattr(ray_jobs, "missing_paths", missing_paths)
    monkeypatch.setattr(ray_jobs, "submit", submit)
    monkeypatch.setattr(ray_jobs, "info", lambda address, submission: {"status": "queued"})
    return seen


def spec(name: str) -> dict[str, Any]:
    return {"name": name, "model": "tiny-random-phi3", "compute": "cluster",
            "data": {"train": "data/train.jsonl"}}  # fmt: skip


def test_relative_data_paths_are_resolved_and_checked_on_the_cluster(
    workspace: Path, tmp_path: Path, cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(ROW)
    monkeypatch.chdir(tmp_path)
    job = Client(workspace).jobs.create(spec("on-ray"))
    train = str(tmp_path / "data" / "train.jsonl")
    assert job.spec["data"]["train"] == train and job.submission == "chattune-on-ray-1"
    assert cluster["asked"] == [[str(Workspace.find(workspace).root), train]]
    assert len(cluster["submitted"]) == 1


def test_paths_the_cluster_cannot_see_are_refused_before_submitting(
    workspace: Path, tmp_path: Path, cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(ROW)
    monkeypatch.chdir(tmp_path)
    train = str(tmp_path / "data" / "train.jsonl")
    cluster["hidden"].add(train)
    client = Client(workspace)
    with pytest.raises(ValidationError, match=rf"cluster .* cannot see data.train {train} "):
        client.jobs.create(spec("hidden"))
    assert cluster["submitted"] == [] and client.jobs.list() == []


def test_the_cli_names_the_ray_submission_not_a_pid() -> None:
    from chattune.cli.jobs import _where
    from chattune.store.jobs import Job

    fields = {name: None for name in Job.__dataclass_fields__}
    job = Job(**{**fields, "submission": "chattune-j-1", "compute": "cluster", "pid": None})
    assert _where(job) == "Ray job chattune-j-1 on cluster"
