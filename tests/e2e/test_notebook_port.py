"""The reference notebook's cells, in order, through ``chattune.azureml``: the ported
notebook (examples/notebook_port.py) runs as a user runs it, in an empty folder, on
tiny-random-phi3 for 2 steps, and prints what the notebook prints.

client → model with label latest → allow-list tags by ast.literal_eval → compute and its GPU
count → 5% download with the reference flags → component in a @pipeline (LoRA on, DeepSpeed
off) → stream → register from azureml://jobs/... → endpoint + deployment with probes and
request settings → traffic 100 → invoke with a test_gen conversation that ends with an
assistant turn → delete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chattune import Client

PORT = Path(__file__).resolve().parents[2] / "examples" / "notebook_port.py"


@pytest.mark.slow  # ~3 min on 2 shared cores (training, evaluation, a deployment)
def test_the_ported_notebook_runs_every_cell_in_order(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path, ultrachat_sample_dir: Path
) -> None:
    run = subprocess.run(
        [sys.executable, str(PORT)], cwd=tmp_path, capture_output=True, text=True, timeout=540
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "Using model name: tiny-random-phi3, version: 1, id: tiny-random-phi3:1" in out
    assert "Please create a compute from the above list - ['local-cpu', 'local-gpu']" in out
    assert "Number of GPU's in compute local-" in out
    assert "train_sft: 60 of 1208 rows" in out  # the head 5% of the offline sample
    display = "tiny-random-phi3-ultrachat-bs1-cosine-nods-nolora-save_limit-1-seqlen256"
    assert f"Display name used for the run: {display}" in out
    assert "stage finetune: completed" in out
    assert "pipeline job outputs:  {'mlflow_model_folder': " in out
    assert "path to register model:  azureml://jobs/job-" in out

    client = Client(workspace)
    [job] = client.jobs.list()
    assert job.status == "completed" and len(display) > 63 and job.name != display
    assert job.experiment == "chat_completion_Phi-3-mini-4k-instruct"  # experiment_name=
    assert job.spec["description"] == display
    assert job.parameters["apply_deepspeed"]["value"] is False
    assert job.parameters["max_steps"]["value"] == 2
    [model] = client.models.list("tiny-random-phi3-ultrachat-200k")
    assert model.description.endswith("fine tuned model for ultrachat 200k chat-completion")

    # The request the notebook sends: a test_gen conversation, ending with the assistant.
    sample = tmp_path / "ultrachat_200k_dataset" / "sample_score.json"
    request = json.loads(sample.read_text())
    assert request["input_data"]["input_string"][0][-1]["role"] == "assistant"
    raw = out.split("raw response: \n", 1)[1].splitlines()[0].strip()
    assert isinstance(json.loads(raw)["output"], str)
    assert client.endpoints.list() == []  # begin_delete(...).wait() removed it
