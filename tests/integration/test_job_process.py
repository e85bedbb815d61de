"""A job is a real process: create returns at once, a killed job shows failed and resumes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from chattune import Client
from chattune.errors import ConflictError
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES


def _spec(data: Path, **params: object) -> dict[str, object]:
    return {
        "model": "tiny-random-phi3",
        "data": {"train": str(data / "train_sft.jsonl"), "test": str(data / "test_sft.jsonl")},
        "parameters": {"max_steps": 3, "max_seq_length": 128, "logging_steps": 1, **params},
    }


@pytest.fixture
def client_and_data(
    workspace: Path, tmp_path: Path, ultrachat_sample_dir: Path, tiny_model_dir: Path
) -> tuple[Client, Path]:
    client = Client(workspace)
    client.data.download("ultrachat-sample", split_pc=5, out=tmp_path / "data")
    return client, tmp_path / "data"


def test_killed_job_shows_failed_and_resume_reuses_finished_stages(client_and_data) -> None:
    client, data = client_and_data
    job = client.jobs.create(_spec(data) | {"name": "killme"})
    assert job.status in ("queued", "running") and job.pid
    deadline = time.time() + 120
    while client.jobs.get("killme").stage("preprocess").status != "completed":
        assert time.time() < deadline, client.jobs.logs("killme")
        time.sleep(0.2)
    os.kill(job.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while (dead := client.jobs.get("killme")).status != "failed":
        assert time.time() < deadline
        time.sleep(0.2)
    assert "died" in (dead.error or "")

    client.jobs.resume("killme")
    final = client.jobs.wait("killme", timeout=240)
    assert final.status == "completed", client.jobs.logs("killme")
    notes = {s.name: s.note for s in final.stages}
    assert notes["validate"] == notes["model_import"] == notes["preprocess"] == "reused"
    metrics = client.jobs.metrics("killme")["final"]
    assert {"loss", "test_loss", "base_test_loss", "test_token_accuracy"} <= set(metrics)
    assert metrics["test_loss"] < metrics["base_test_loss"]  # three LoRA steps already help
    with pytest.raises(ConflictError):
        client.jobs.resume("killme")

    first = client.models.register(job="killme", name="tiny-chat")
    second = client.models.register(job="killme", name="tiny-chat", description="again")
    assert (first.version, second.version) == ("1", "2")
    assert client.models.show("tiny-chat").ref == "tiny-chat:2"  # latest label moved
    assert client.models.show("tiny-chat", version="1").labels == []
    assert second.lineage["base_model"] == "tiny-random-phi3:1"
    assert second.lineage["metrics"]["test_loss"] == metrics["test_loss"]
    with pytest.raises(ConflictError, match="tiny-chat:2 exists already"):
        client.models.register(job="killme", name="tiny-chat", version="2")
    ref, folder = client.models.resolve_for_serving("tiny-chat@latest")
    assert ref == "tiny-chat:2" and (folder / "config.json").exists()


def test_stage_failure_is_recorded_with_its_message(client_and_data, tmp_path: Path) -> None:
    client, data = client_and_data
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    job = client.jobs.create(_spec(data) | {"name": "bad", "data": {"train": str(bad)}})
    final = client.jobs.wait(job.name, timeout=120)
    assert final.status == "failed"
    assert final.stage("validate").status == "failed"
    assert "line 1 of bad.jsonl" in (final.stage("validate").error or "")
    assert all(s.status == "canceled" for s in final.stages[1:])


@pytest.mark.slow  # several jobs' start-up: `make test-all`
def test_continue_on_step_failure_skips_stages_whose_inputs_failed(client_and_data) -> None:
    client, data = client_and_data
    spec = _spec(data, max_seq_length=8) | {
        "name": "cont",
        "settings": {"continue_on_step_failure": True},
    }
    final = client.jobs.wait(client.jobs.create(spec).name, timeout=120)
    status = {s.name: (s.status, s.note or s.error or "") for s in final.stages}
    assert final.status == "failed"
    assert status["preprocess"][0] == "failed"
    assert "no assistant tokens left after truncation to 8" in status["preprocess"][1]
    assert status["finetune"] == ("canceled", "skipped: needs preprocess, which failed")
    assert status["package"][0] == "canceled"


@pytest.mark.slow  # several jobs' start-up: `make test-all`
def test_validate_reruns_when_parameters_change_and_records_effective_params(
    client_and_data,
) -> None:
    client, data = client_and_data
    first = client.jobs.wait(client.jobs.create(_spec(data, max_steps=1)).name, timeout=240)
    assert first.status == "completed", client.jobs.logs(first.name)
    # What the job trained with, and where each value came from (tiny-random-phi3's card
    # sets learning_rate 1e-3; the spec sets max_seq_length).
    assert first.parameters["learning_rate"] == {"value": 0.001, "source": "model card"}
    assert first.parameters["max_seq_length"] == {"value": 128, "source": "spec"}
    spec_yaml = (client.workspace.job_dir(first.name) / "spec.yaml").read_text()
    assert "  learning_rate: 0.001  # model card\n" in spec_yaml
    import mlflow

    run = mlflow.MlflowClient(client.workspace.mlflow_connect_uri).get_run(first.mlflow_run_id)
    assert run.data.params["learning_rate"] == "0.001"
    assert run.data.tags["source.learning_rate"] == "model card"

    # Same model and data, two processes asked for: validate must run again and refuse.
    second = client.jobs.create(_spec(data, max_steps=1, number_of_gpu_to_use_finetuning=2))
    final = client.jobs.wait(second.name, timeout=120)
    assert final.stage("validate").status == "failed", client.jobs.logs(second.name)
    assert final.stage("validate").note is None  # ran, not reused
    assert "number_of_gpu_to_use_finetuning" in (final.stage("validate").error or "")


def test_cancel_right_after_create_is_canceled_not_failed(client_and_data) -> None:
    client, data = client_and_data
    job = client.jobs.create(_spec(data) | {"name": "early"})
    time.sleep(0.3)  # the job process is still starting (imports, MLflow)
    final = client.jobs.cancel(job.name)
    assert final.status == "canceled", final.error
    assert all(s.status in ("canceled", "completed") for s in final.stages)


def test_kill_during_training_then_resume_logs_each_step_once_and_lists_the_resume(
    client_and_data,
) -> None:
    client, data = client_and_data
    spec = _spec(data, max_steps=8, save_steps=3, evaluation_strategy="no") | {"name": "cut"}
    job = client.jobs.create(spec)
    checkpoints = client.workspace.job_dir("cut") / "finetune" / "checkpoints"
    deadline = time.time() + 240
    while True:  # past the first checkpoint, with steps logged after it
        assert time.time() < deadline, client.jobs.logs("cut")
        run_id = client.jobs.get("cut").mlflow_run_id
        history = client.jobs.metrics("cut")["history"] if run_id else {}
        if (checkpoints / "checkpoint-3").exists() and max(
            (s for s, _ in history.get("loss", [])), default=0
        ) >= 5:
            break
        time.sleep(0.1)
    os.kill(job.pid, signal.SIGKILL)
    client.jobs.wait("cut", timeout=30)
    logged_before = sorted(s for s, _ in client.jobs.metrics("cut")["history"]["loss"])
    assert logged_before[-1] >= 5

    client.jobs.resume("cut")
    final = client.jobs.wait("cut", timeout=300)
    assert final.status == "completed", client.jobs.logs("cut")
    steps = sorted(s for s, _ in client.jobs.metrics("cut")["history"]["loss"])
    assert steps == list(range(1, 9))  # each step once, though steps after the checkpoint ran twice
    (resume,) = final.resumes
    assert resume["checkpoint"] in ("checkpoint-3", "checkpoint-6")
    assert resume["step"] == int(resume["checkpoint"].split("-")[1]) < logged_before[-1] + 1
    assert final.stage("finetune").outputs["resumed_from"].endswith(resume["checkpoint"])
    from tests.e2e.cli import chattune

    shown = chattune("jobs", "show", "cut").stdout
    assert "resume 1: " in shown and f"from {resume['checkpoint']} (step {resume['step']})" in shown


def test_learning_rate_1e30_fails_the_job_naming_the_non_finite_loss_and_packages_nothing(
    client_and_data,
) -> None:
    client, data = client_and_data
    job = client.jobs.create(_spec(data, learning_rate=1e30, save_steps=1) | {"name": "nan"})
    final = client.jobs.wait(job.name, timeout=240)
    assert final.status == "failed"
    error = final.stage("finetune").error or ""
    assert error.startswith("step 2: the training loss is nan (not finite)"), error
    assert "learning_rate 1e+30 too high" in error
    assert final.stage("package").status == "canceled"
    job_dir = client.workspace.job_dir("nan")
    assert not any((job_dir / "package").glob("*")) and not (job_dir / "finetune/final").exists()
    assert (job_dir / "finetune/checkpoints/checkpoint-1/trainer_state.json").exists()


@pytest.mark.slow  # several jobs' start-up: `make test-all`
def test_local_jobs_run_one_at_a_time_in_submission_order_and_list_shows_the_queue(
    client_and_data,
) -> None:
    client, data = client_and_data
    names = ["q1", "q2", "q3"]
    for name in names:
        client.jobs.create(_spec(data, max_steps=1, evaluation_strategy="no") | {"name": name})
    queued = {j.name: j.queue_position for j in client.jobs.list()}
    assert queued["q2"] == 2 and queued["q3"] == 3, queued
    from tests.e2e.cli import chattune

    listed = chattune("jobs", "list").stdout
    assert "#3" in listed
    canceled = client.jobs.cancel("q3")  # canceled while waiting in the queue
    assert canceled.status == "canceled", canceled.error
    assert all(s.status == "canceled" for s in canceled.stages)
    first, second = (client.jobs.wait(n, timeout=300) for n in names[:2])
    assert first.status == second.status == "completed", client.jobs.logs("q2")
    assert second.started_at is not None and first.finished_at is not None
    assert second.started_at >= first.finished_at  # q2 waited for q1
    assert "queued behind q1" in client.jobs.logs("q2")


@pytest.mark.slow  # several jobs' start-up: `make test-all`
def test_cancel_during_training_is_canceled(client_and_data) -> None:
    client, data = client_and_data
    job = client.jobs.create(_spec(data, max_steps=50, evaluation_strategy="no") | {"name": "mid"})
    deadline = time.time() + 120
    while client.jobs.progress(job.name).get("step", 0) < 1:
        assert time.time() < deadline, client.jobs.logs("mid")
        time.sleep(0.2)
    final = client.jobs.cancel(job.name)
    assert final.status == "canceled", final.error
    assert final.stage("finetune").status == "canceled"
