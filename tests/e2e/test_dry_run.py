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
