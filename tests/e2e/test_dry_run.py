"""`jobs create --dry-run`: the effective parameters with their source, nothing started."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import chattune

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_dry_run_prints_effective_parameters_and_starts_nothing(
    workspace: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    for split in ("train_sft", "test_sft", "test_gen"):
        (data / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        (EXAMPLES / "job.yaml").read_text().replace("ultrachat_200k_dataset", str(data))
    )
    plan = json.loads(chattune("jobs", "create", "-f", str(spec), "--dry-run", "--json").stdout)
    assert plan["parameters"]["learning_rate"] == {"value": 0.0002, "source": "model card"}
    assert plan["parameters"]["max_seq_length"] == {"value": 512, "source": "model card"}
    assert [s["name"] for s in plan["stages"]] == [
        "validate",
        "model_import",
        "preprocess",
        "finetune",
        "evaluate",
        "package",
    ]
    assert all(s["action"] == "run" for s in plan["stages"])
    text = chattune("jobs", "create", "-f", str(spec), "--dry-run").stdout
    assert "learning_rate" in text and "model card" in text
    listed = json.loads(chattune("jobs", "list", "--json").stdout)
    assert listed == []


def test_out_of_range_parameter_fails_create_and_dry_run_in_one_line(
    workspace: Path, tmp_path: Path
) -> None:
    train = tmp_path / "train.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    train.write_text(json.dumps(row) + "\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"model: tiny-random-phi3\ndata:\n  train: {train}\nparameters:\n  seed: 1e20\n"
    )
    for extra in (["--dry-run"], []):
        proc = chattune("jobs", "create", "-f", str(spec), *extra, check=False)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"{spec}:5: parameters.seed: 100000000000000000000 is out of range" in lines[0]
        assert "allowed 0 to 4294967295" in lines[0]
    assert json.loads(chattune("jobs", "list", "--json").stdout) == []
