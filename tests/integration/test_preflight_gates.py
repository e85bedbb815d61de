"""Real tiny-random-phi3 runs: the pre-flight estimate leaves no job and no cache entry, the
job then records its prediction beside what it took; models compare ranks two versions as
their MLflow test loss does, and models promote refuses the worse one, --force records it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chattune import Client
from chattune.errors import ConflictError


def _spec(name: str, data: Path, steps: int) -> dict[str, object]:
    return {
        "name": name,
        "model": "tiny-random-phi3",
        "data": {"train": str(data / "train_sft.jsonl"), "test": str(data / "test_sft.jsonl")},
        "parameters": {
            "max_steps": steps,
            "max_seq_length": 128,
            "apply_lora": False,
            "learning_rate": 1e-3,
            "generation_eval_rows": 2,
            "generation_max_new_tokens": 8,
        },
    }


@pytest.mark.slow
def test_estimate_then_job_records_predicted_and_actual(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    client = Client(workspace)
    client.data.download("ultrachat-sample", split_pc=5, out=tmp_path / "data")
    spec = _spec("pf", tmp_path / "data", 3)
    est = client.jobs.estimate(spec)
    assert est.total_steps == 3 and est.fits and est.peak_rss_gb > 0.2
    assert set(est.stages) >= {"validate", "preprocess", "finetune", "evaluate", "package"}
    assert client.jobs.list() == []  # no job; and no cache entry another job could reuse
    assert not client.jobs.plan(spec).stages[0].action.startswith("reuse")
    client.jobs.create(spec)
    assert client.jobs.wait("pf", timeout=900).status == "completed", client.jobs.logs("pf")
    found = client.jobs.resources("pf")
    assert found["predicted"]["total_seconds"] == pytest.approx(est.total_seconds, abs=0.2)
    actual = found["actual"]
    assert actual["total_seconds"] > 0 and 0.2 < actual["peak_rss_gb"] < 8
    assert set(actual["stage_peak_rss_gb"]) == set(actual["stages"]) - {"setup"}
    # A second estimate of the same shape is corrected by this job's figures.
    assert client.jobs.estimate(_spec("pf2", tmp_path / "data", 5)).history == 1


@pytest.mark.slow
def test_compare_ranks_like_mlflow_and_promote_gates_the_label(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    client = Client(workspace)
    client.data.download("ultrachat-sample", split_pc=5, out=tmp_path / "data")
    for name, steps in (("short", 1), ("long", 12)):
        client.jobs.create(_spec(name, tmp_path / "data", steps))
    for name in ("short", "long"):
        assert client.jobs.wait(name, timeout=900).status == "completed", client.jobs.logs(name)
    client.models.register(job="short", name="chat", version="1")
    client.models.register(job="long", name="chat", version="2")
    result = client.models.compare("chat:1", "chat:2", samples=1)
    mlflow_loss = {
        f"chat:{v}": client.jobs.metrics(j)["final"]["test_loss"]
        for v, j in (("1", "short"), ("2", "long"))
    }
    assert result.better("test_loss") == min(mlflow_loss, key=lambda k: mlflow_loss[k])
    for ref, loss in mlflow_loss.items():
        assert result.metrics[ref]["test_loss"] == pytest.approx(loss, rel=1e-3)
    assert Path(result.report_markdown or "").exists() and result.mlflow_run_id
    assert not (Path.cwd() / "mlruns").exists()  # artifacts stay in the workspace
    assert list((workspace / "mlartifacts").rglob("report.html"))
    better, worse = sorted(mlflow_loss, key=lambda k: mlflow_loss[k])
    gate = ["test_loss <= current.test_loss"]
    assert client.models.promote(better, "production", gate).promoted
    with pytest.raises(ConflictError, match=re.escape("test_loss <= current.test_loss failed")):
        client.models.promote(worse, "production", gate)
    forced = client.models.promote(worse, "production", gate, force=True)
    assert forced.forced and "production" in client.models.resolve(worse).labels
    name, version = worse.split(":")
    (event,) = client.models.history(name, version)
    assert event["kind"] == "warning" and "failed" in event["message"]
