"""A job trains directly on ShareGPT, Alpaca and prompt/completion files (no convert step),
and the lineage's data hashes are what `sha256sum` prints for those files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from chattune import Client
from chattune.cli.models import app as models_app


def _conversations(n: int) -> list[dict[str, object]]:
    return [
        {
            "conversations": [
                {"from": "human", "value": f"What is {i} plus {i}?"},
                {"from": "gpt", "value": f"{i} plus {i} is {2 * i}."},
            ],
            "system": "You add numbers.",
        }
        for i in range(n)
    ]


def test_a_job_trains_on_sharegpt_alpaca_and_prompt_completion_files(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    train = tmp_path / "sharegpt.json"
    train.write_text(json.dumps(_conversations(8)))
    test = tmp_path / "alpaca.json"
    test.write_text(
        json.dumps(
            [
                {"instruction": f"Add {i} and {i}.", "input": "", "output": str(2 * i)}
                for i in range(4)
            ]
        )
    )
    validation = tmp_path / "pc.jsonl"
    validation.write_text(
        "".join(
            json.dumps({"prompt": f"{i}+{i}=", "completion": str(2 * i)}) + "\n" for i in range(4)
        )
    )
    client = Client(workspace)
    spec = {
        "name": "formats",
        "model": "tiny-random-phi3",
        "data": {"train": str(train), "test": str(test), "validation": str(validation)},
        "parameters": {"max_steps": 2, "max_seq_length": 64, "logging_steps": 1},
    }
    job = client.jobs.wait(client.jobs.create(spec).name, timeout=600)  # 2 min alone
    logs = client.jobs.logs("formats")
    assert job.status == "completed", logs
    assert "data.train: 8 conversations, sharegpt format" in logs
    assert "data.test: 4 conversations, alpaca format" in logs
    assert "data.validation: 4 conversations, prompt_completion format" in logs
    assert "test_loss" in client.jobs.metrics("formats")["final"]

    client.models.register(job="formats", name="formats-chat")
    shown = CliRunner().invoke(models_app, ["show", "formats-chat", "--json"])
    lineage = json.loads(shown.stdout)["lineage"]["data_sha256"]
    for split, path in (("train", train), ("test", test), ("validation", validation)):
        printed = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True)
        assert lineage[split] == printed.stdout.split()[0]
