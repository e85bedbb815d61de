"""``client.data.files`` and ``client.data.token_lengths`` (what the studio's data page and
job form use)."""

from __future__ import annotations

import json
from pathlib import Path

from chattune.client import Client


def test_files_lists_data_files_but_not_environments_or_hidden_folders(
    workspace: Path, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    for rel in ("a/train.jsonl", "a/b/test.parquet", "c.csv", "notes.txt", ".hidden/x.jsonl"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "venv").mkdir()
    (root / "venv" / "pyvenv.cfg").write_text("")
    (root / "venv" / "inside.jsonl").write_text("")
    (root / "a" / "b" / "c" / "d").mkdir(parents=True)
    (root / "a" / "b" / "c" / "d" / "deep.jsonl").write_text("")
    found = Client(workspace).data.files(root)
    assert found == ["a/b/test.parquet", "a/train.jsonl", "c.csv"]


def test_token_lengths_bins_every_conversation(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    path = tmp_path / "train.jsonl"
    rows = [
        [{"role": "user", "content": "hi " * n}, {"role": "assistant", "content": "ok"}]
        for n in (1, 5, 40)
    ]
    path.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    hist = Client(workspace).data.token_lengths(path, tiny_model_dir, bins=10)
    assert hist["rows"] == 3 and sum(hist["counts"]) == 3
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert hist["edges"][-1] > hist["max"] >= hist["edges"][-2]
    assert hist["counts"][-1] >= 1  # the longest row is in the last bin
