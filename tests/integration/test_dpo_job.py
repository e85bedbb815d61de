"""A `method: dpo` job end to end on the tiny model: preference rows in LLaMA-Factory's
ShareGPT shape (train) and ultrafeedback_binarized's (test), a few steps, reward metrics
in MLflow, the evaluation's base-vs-tuned table, a registered model with its lineage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from chattune import Client


def sharegpt_pairs(n: int) -> list[dict[str, object]]:
    return [
        {
            "conversations": [{"from": "human", "value": f"What is {i} plus {i}?"}],
            "chosen": {"from": "gpt", "value": f"{i} plus {i} is {2 * i}."},
            "rejected": {"from": "gpt", "value": f"I do not know what {i} plus {i} is."},
        }
        for i in range(n)
    ]


def ultrafeedback_pairs(n: int) -> list[dict[str, object]]:
    rows = []
    for i in range(n):
        user = {"role": "user", "content": f"Add {i} and {i}."}
        rows.append(
            {
                "prompt": user["content"],
                "chosen": [user, {"role": "assistant", "content": str(2 * i)}],
                "rejected": [user, {"role": "assistant", "content": "No idea."}],
            }
        )
    return rows


def test_a_dpo_job_trains_evaluates_and_registers(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    train, test = tmp_path / "dpo_demo.json", tmp_path / "prefs.jsonl"
    train.write_text(json.dumps(sharegpt_pairs(8)))
    test.write_text("".join(json.dumps(r) + "\n" for r in ultrafeedback_pairs(4)))
    client = Client(workspace)
    spec = {
        "name": "dpo-tiny",
        "method": "dpo",
        "model": "tiny-random-phi3",
        "data": {"train": str(train), "test": str(test)},
        "parameters": {
            "max_steps": 3,
            "max_seq_length": 64,
            "max_prompt_length": 32,
            "logging_steps": 1,
            "learning_rate": 1e-3,
            "evaluation_strategy": "no",
        },
    }
    job = client.jobs.wait(client.jobs.create(spec).name, timeout=600)
    logs = client.jobs.logs("dpo-tiny")
    assert job.status == "completed", logs
    assert "data.train: 8 conversations, sharegpt_dpo format" in logs
    assert "reference: the base model (adapter disabled)" in logs
    metrics = client.jobs.metrics("dpo-tiny")
    final = metrics["final"]
    for name in ("loss", "rewards/chosen", "rewards/margins", "rewards/accuracies"):
        assert f"test_{name}" in final and f"base_test_{name}" in final, final
    assert final["base_test_rewards/margins"] == 0.0  # the base is the reference
    steps = metrics["history"]["rewards/accuracies"]
    assert [step for step, _ in steps] == [1, 2, 3]  # logged every step while training

    version = client.models.register(job="dpo-tiny", name="dpo-tiny-chat")
    assert version.lineage["spec"]["method"] == "dpo"


@pytest.mark.slow  # two jobs' start-up: `make test-all`
def test_dpo_from_a_registered_sft_model_has_the_sft_parent_in_its_lineage(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    train = tmp_path / "prefs.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in ultrafeedback_pairs(6)))
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "".join(json.dumps({"messages": r["chosen"]}) + "\n" for r in ultrafeedback_pairs(6))
    )
    client = Client(workspace)
    fast = {"max_steps": 2, "max_seq_length": 64, "evaluation_strategy": "no"}
    sft = {
        "name": "sft",
        "model": "tiny-random-phi3",
        "data": {"train": str(chat)},
        "parameters": fast,
    }
    assert client.jobs.wait(client.jobs.create(sft).name, timeout=600).status == "completed"
    client.models.register(job="sft", name="my-sft", version="1")
    dpo = {"name": "dpo", "method": "dpo", "model": "my-sft:1", "data": {"train": str(train)},
           "parameters": fast}  # fmt: skip
    job = client.jobs.wait(client.jobs.create(dpo).name, timeout=600)
    assert job.status == "completed", client.jobs.logs("dpo")
    client.models.register(job="dpo", name="my-dpo", version="1")
    lineage = client.models.lineage("my-dpo", "1")
    assert lineage["base_model"]["name"] == "my-sft:1"
    assert lineage["base_model"]["source"] == "registered model"
    parent = lineage["parent"]
    assert parent["job"]["name"] == "sft"
    printed = subprocess.run(["sha256sum", str(chat)], capture_output=True, text=True)
    assert parent["data"][0]["sha256"] == printed.stdout.split()[0]
    assert (
        lineage["data"][0]["sha256"]
        == subprocess.run(["sha256sum", str(train)], capture_output=True, text=True).stdout.split()[
            0
        ]
    )
