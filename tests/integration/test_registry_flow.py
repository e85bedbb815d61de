"""A real tiny-random-phi3 job → register → MLflow's registry loads it by alias; the
version's files are the job's (hard links), and removing the job folder keeps it loading."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from chattune import Client
from chattune.registry.api import hf_folder


@pytest.mark.slow
def test_trained_job_registers_into_mlflow_and_loads_by_alias(
    workspace: Path, tmp_path: Path, ultrachat_sample_dir: Path, tiny_model_dir: Path
) -> None:
    import mlflow
    import mlflow.pyfunc  # its first import warns about MLflow's own ResponsesAgent types

    client = Client(workspace)
    client.data.download("ultrachat-sample", split_pc=5, out=tmp_path / "data")
    spec = {
        "name": "flow",
        "model": "tiny-random-phi3",
        "data": {"train": str(tmp_path / "data" / "train_sft.jsonl")},
        "parameters": {"max_steps": 2, "max_seq_length": 128},
    }
    client.jobs.create(spec)
    assert client.jobs.wait("flow", timeout=600).status == "completed", client.jobs.logs("flow")
    model = client.models.register(job="flow", name="flow-chat")
    final = workspace / "jobs" / "flow"
    weights = hf_folder(model.path) / "model.safetensors"
    assert weights.stat().st_nlink >= 2  # shared with the job's package, not a copy

    shutil.rmtree(final)  # the job's files go; the registered version keeps its data
    mlflow.set_tracking_uri(client.models.ws.mlflow_connect_uri)
    mlflow.set_registry_uri(client.models.ws.mlflow_connect_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = mlflow.pyfunc.load_model("models:/flow-chat@latest")
        out = loaded.predict(
            {"messages": [{"role": "user", "content": "Hi"}]}, params={"max_new_tokens": 4}
        )
    tokens = loaded.unwrap_python_model().tokenizer(out, add_special_tokens=False)["input_ids"]
    assert isinstance(out, str) and len(tokens) <= 5
    version = mlflow.MlflowClient().get_model_version_by_alias("flow-chat", "latest")
    assert version.run_id == client.jobs.get("flow").mlflow_run_id
