"""The evaluate stage on a real tiny job: one definition of eval loss shared with training,
generation metrics for base and fine-tuned, and the report `jobs show --metrics` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chattune import Client
from tests.e2e.cli import chattune


@pytest.fixture(scope="module")
def evaluated_job(tmp_path_factory: pytest.TempPathFactory, ultrachat_sample_dir: Path):
    """One tiny job with train, test and test_gen, trained 4 steps, evaluated at step 4."""
    root = tmp_path_factory.mktemp("eval")
    client = Client(root / "ws")
    client.data.download("ultrachat-sample", split_pc=20, out=root / "data")  # 5 test_gen rows
    data = {s: str(root / "data" / f"{s}.jsonl") for s in ("train_sft", "test_sft", "test_gen")}
    spec = {
        "name": "evaluated",
        "model": "tiny-random-phi3",
        "data": {
            "train": data["train_sft"],
            "test": data["test_sft"],
            "test_gen": data["test_gen"],
        },
        "parameters": {
            "max_steps": 4,
            "max_seq_length": 128,
            "logging_steps": 1,
            "evaluation_strategy": "steps",
            "eval_steps": 4,
            "generation_eval_rows": 5,
            "generation_max_new_tokens": 8,
        },
    }
    job = client.jobs.wait(client.jobs.create(spec).name, timeout=300)
    assert job.status == "completed", client.jobs.logs(job.name)
    return client, job


def test_training_eval_and_test_loss_are_one_number_for_one_question(evaluated_job) -> None:
    client, job = evaluated_job
    metrics = client.jobs.metrics(job.name)
    (step, eval_loss), *_ = sorted(metrics["history"]["eval_loss"], reverse=True)
    assert step == 4  # the final model, on the test split (no validation split given)
    # Same code, same model (merged afterwards, so float rounding only), same split.
    assert eval_loss == pytest.approx(metrics["final"]["test_loss"], rel=1e-5)
    assert metrics["final"]["eval_token_accuracy"] == pytest.approx(
        metrics["final"]["test_token_accuracy"], abs=1e-9
    )


def test_generation_metrics_for_base_and_fine_tuned(evaluated_job) -> None:
    client, job = evaluated_job
    final = client.jobs.metrics(job.name)["final"]
    for prefix in ("", "base_"):
        assert 0 <= final[f"{prefix}gen_rouge_l"] <= 1
        assert 0 <= final[f"{prefix}gen_bleu"] <= 100
    report = json.loads((client.workspace.job_dir(job.name) / "evaluate/report.json").read_text())
    assert set(report["metrics"]) == {"loss", "perplexity", "token_accuracy", "rouge_l", "bleu"}
    assert report["generation"] == {"split": "test_gen", "rows": 5, "max_new_tokens": 8}
    assert len(report["samples"]) == 3
    gen_file = Path(job.spec["data"]["test_gen"])
    first = json.loads(gen_file.read_text().splitlines()[0])["messages"]
    reference = next(m["content"] for m in first if m["role"] == "assistant")
    assert report["samples"][0]["reference"] == reference
    assert all(
        isinstance(s["base"], str) and isinstance(s["fine_tuned"], str) for s in report["samples"]
    )


def test_jobs_show_metrics_prints_the_report(evaluated_job, monkeypatch) -> None:
    client, job = evaluated_job
    monkeypatch.setenv("CHATTUNE_WORKSPACE", str(client.workspace.root))
    out = chattune("jobs", "show", job.name, "--metrics").stdout
    flat = " ".join(out.split())
    for name in ("loss", "perplexity", "token_accuracy", "rouge_l", "bleu"):
        assert name in flat
    assert "base" in flat and "fine-tuned" in flat
    assert "sample 3" in flat.lower() and "reference" in flat
    assert "report.md" in flat
    shown = json.loads(chattune("jobs", "show", job.name, "--metrics", "--json").stdout)
    assert shown["metrics"]["report"]["metrics"]["bleu"]["fine_tuned"] >= 0


def test_run_holds_spec_logs_loss_curve_and_report_as_artifacts(evaluated_job, tmp_path) -> None:
    import mlflow
    import yaml

    client, job = evaluated_job
    ml = mlflow.MlflowClient(client.workspace.mlflow_connect_uri)

    def listed(path: str | None = None) -> set[str]:
        return {a.path for a in ml.list_artifacts(job.mlflow_run_id, path)}

    assert {"spec.yaml", "logs", "plots", "evaluation"} <= listed()
    stages = {f"logs/stages/{s.name}.log" for s in job.stages}
    assert stages <= listed("logs/stages")
    assert {"evaluation/report.json", "evaluation/report.md"} <= listed("evaluation")
    got = Path(ml.download_artifacts(job.mlflow_run_id, "", str(tmp_path)))
    assert yaml.safe_load((got / "spec.yaml").read_text())["parameters"]["max_steps"] == 4
    finetune_log = (got / "logs/stages/finetune.log").read_text()
    assert "stage finetune: running" in finetune_log and "stage evaluate" not in finetune_log
    assert (got / "plots/loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    local = client.workspace.job_dir(job.name) / "evaluate/report.json"
    assert (got / "evaluation/report.json").read_text() == local.read_text()
