"""`compute check` and the validate stage refuse a job that cannot fit this machine, naming
the estimate, the memory there is and what would fit — in seconds, before any training."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.cli import chattune

from chattune import Client

ROW = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'


def test_compute_check_refuses_a_huge_lora_rank_naming_estimate_and_memory(
    workspace: Path,
) -> None:
    started = time.time()
    proc = chattune(
        "compute",
        "check",
        "--model",
        "SmolLM2-135M-Instruct",
        "--lora-r",
        "1000000",
        check=False,
    )
    took = time.time() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert "does not fit" in out
    assert "RAM available" in out and "optimizer" in out
    assert "would fit: lora_r: " in out
    assert took < 5, took
    result = json.loads(
        chattune(
            "compute",
            "check",
            "--model",
            "SmolLM2-135M-Instruct",
            "--lora-r",
            "1000000",
            "--json",
            check=False,
        ).stdout
    )
    assert result["estimated_memory_gb"] > result["available_gb"] and not result["ok"]


def test_compute_check_fits_the_demo_job(workspace: Path) -> None:
    result = Client(workspace).compute.check("SmolLM2-135M-Instruct", "lora")
    assert result["ok"], result
    assert result["parameters"]["max_seq_length"] == 512  # the model card's default
    assert 1 < result["estimated_memory_gb"] < 8


def test_validate_stage_refuses_the_job_in_seconds(workspace: Path, tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text(ROW)
    client = Client(workspace)
    job = client.jobs.create(
        {
            "name": "huge-r",
            "model": "SmolLM2-135M-Instruct",
            "data": {"train": str(tmp_path / "t.jsonl")},
            "parameters": {"lora_r": 1_000_000},
        }
    )
    job = client.jobs.wait(job.name, timeout=120)
    assert job.status == "failed"
    validate = job.stages[0]
    assert validate.name == "validate" and validate.status == "failed"
    assert "needs ~" in validate.error and "GB RAM available" in validate.error
    assert "fix: lora_r: " in validate.error
    assert validate.duration is not None and validate.duration < 5, validate.duration
    assert [s.status for s in job.stages[1:]] == ["canceled"] * 5  # nothing else ran


def test_compute_check_names_a_parameter_it_does_not_know(workspace: Path) -> None:
    import pytest

    from chattune.errors import ValidationError

    with pytest.raises(ValidationError, match="lora_rank not known here"):
        Client(workspace).compute.check("tiny-random-phi3", lora_rank=3)
