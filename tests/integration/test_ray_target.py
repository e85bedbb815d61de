"""A `ray` compute target: the job's worker runs through the Ray Jobs API on a local head
the test starts, and its model registers and serves like a local one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chattune import Client
from chattune.errors import NotFoundError, RuntimeFailure

pytestmark = [pytest.mark.slow, pytest.mark.ray]
pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    from tests.ray_head import start_ray_head

    head = start_ray_head(tmp_path_factory.mktemp("ray"))
    yield head
    head.stop()


def _spec(data: Path, name: str, **params: object) -> dict[str, object]:
    return {
        "name": name,
        "model": "tiny-random-phi3",
        "compute": "ray-local",
        "data": {"train": str(data / "train_sft.jsonl"), "test": str(data / "test_sft.jsonl")},
        "parameters": {"max_seq_length": 128, "logging_steps": 1, **params},
    }


def test_job_on_ray_completes_registers_and_serves(
    ray_head, workspace: Path, tmp_path: Path, ultrachat_sample_dir: Path
) -> None:
    client = Client(workspace)
    client.data.download("ultrachat-sample", split_pc=5, out=tmp_path / "data")
    target = client.compute.create("ray-local", type="ray", address=ray_head.address)
    assert [t.name for t in client.compute.list()] == ["local", "ray-local"]
    assert client.compute.status("ray-local")["reachable"] is True

    job = client.jobs.create(_spec(tmp_path / "data", "on-ray", max_steps=2))
    assert job.submission == "chattune-on-ray-1" and job.compute == target.name
    final = client.jobs.wait(job.name, timeout=600)
    assert final.status == "completed", client.jobs.logs(job.name)
    model = client.models.register(job=job.name, name="ray-tiny")
    client.endpoints.create("ray-ep")
    try:
        client.endpoints.create_deployment("ray-ep", "blue", model.ref)
        client.endpoints.update("ray-ep", traffic={"blue": 100})
        answer = client.endpoints.invoke(
            "ray-ep",
            {
                "input_data": {
                    "input_string": [{"role": "user", "content": "Hi"}],
                    "parameters": {"max_new_tokens": 4},
                }
            },
        )
        assert isinstance(answer["output"], str)
    finally:
        client.endpoints.delete("ray-ep")

    # Cancel goes through Ray (SIGTERM to the worker there).
    client.jobs.create(_spec(tmp_path / "data", "long", max_steps=500))
    deadline = time.time() + 300
    while client.jobs.get("long").status != "running":
        assert time.time() < deadline, client.jobs.logs("long")
        time.sleep(0.5)
    assert client.jobs.cancel("long").status == "canceled"


def test_unknown_or_unreachable_targets_are_refused(workspace: Path, tmp_path: Path) -> None:
    client = Client(workspace)
    data = tmp_path / "t.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}]}\n')
    spec = {"model": "tiny-random-phi3", "compute": "nope", "data": {"train": str(data)}}
    with pytest.raises(NotFoundError, match=r"compute target 'nope' is not defined \(known: local"):
        client.jobs.create(spec)
    with pytest.raises(RuntimeFailure, match="not reachable"):
        client.compute.create("down", type="ray", address="http://127.0.0.1:9")
    assert [t.name for t in client.compute.list()] == ["local"]
