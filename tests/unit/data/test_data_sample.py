"""ultrachat-sample builder: converters, drops, dedupe, determinism, hub layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from chattune.data import convert
from chattune.data.sample import SPLITS, build_ultrachat_sample, convert_rows, split_of
from chattune.data.schema import validate_conversation
from chattune.errors import AssetError, ConflictError


def test_rows_follow_ultrachat_schema(llamafactory_dir: Path, kept_prompts: list[str]) -> None:
    rows = convert_rows(llamafactory_dir)
    assert [r["prompt"] for r in rows] == kept_prompts
    for row in rows:
        assert list(row) == ["prompt", "prompt_id", "messages"]
        assert row["prompt_id"] == hashlib.sha256(row["prompt"].encode()).hexdigest()
        assert next(m for m in row["messages"] if m["role"] == "user")["content"] == row["prompt"]
        assert all(list(m) == ["content", "role"] for m in row["messages"])
        assert validate_conversation(row["messages"]) == []


def test_each_source_format_is_mapped(llamafactory_dir: Path, glaive_tools: str) -> None:
    by_prompt = {r["prompt"]: r["messages"] for r in convert_rows(llamafactory_dir)}
    assert by_prompt["Name a prime."] == [  # the kto row wins over the later dpo duplicate
        {"content": "Name a prime.", "role": "user"},
        {"content": "Seven.", "role": "assistant"},
    ]
    assert by_prompt["Capital of France?"] == [
        {"content": "Be brief.", "role": "system"},
        {"content": "Capital of France?", "role": "user"},
        {"content": "Paris.", "role": "assistant"},
    ]
    assert by_prompt["What time is it?"] == [
        {"content": convert.TOOLS_SYSTEM + glaive_tools, "role": "system"},
        {"content": "What time is it?", "role": "user"},
        {"content": '<functioncall> {"name": "get_time", "arguments": {}}', "role": "assistant"},
        {"content": 'FUNCTION RESPONSE: {"time": "10:00"}', "role": "user"},
        {"content": "It is 10:00.", "role": "assistant"},
    ]
    assert by_prompt["Tell a joke."][0]["role"] == "user"  # tools "[]" → no system message
    assert by_prompt["Add the numbers.\n1 and 2"][1] == {"content": "3", "role": "assistant"}


def test_build_writes_hub_layout_that_datasets_loads(
    sample_dir: Path, llamafactory_dir: Path, tmp_path: Path, kept_prompts: list[str]
) -> None:
    counts = build_ultrachat_sample(llamafactory_dir, tmp_path / "again")
    assert sum(counts.values()) == len(kept_prompts)
    assert sorted(p.name for p in (sample_dir / "data").iterdir()) == sorted(
        f"{s}-00000-of-00001.parquet" for s in SPLITS
    )
    loaded = datasets.load_dataset(str(sample_dir))
    assert list(loaded) == ["train_sft", "test_sft", "train_gen", "test_gen"]
    assert {s: len(loaded[s]) for s in loaded} == counts
    assert loaded["train_sft"].column_names == ["prompt", "prompt_id", "messages"]
    for split in loaded:
        assert all(split_of(pid) == split for pid in loaded[split]["prompt_id"])


def test_build_is_deterministic(llamafactory_dir: Path, tmp_path: Path) -> None:
    build_ultrachat_sample(llamafactory_dir, tmp_path / "a")
    build_ultrachat_sample(llamafactory_dir, tmp_path / "b")
    for split in SPLITS:
        name = f"data/{split}-00000-of-00001.parquet"
        a, b = pq.read_table(tmp_path / "a" / name), pq.read_table(tmp_path / "b" / name)
        assert a.to_pylist() == b.to_pylist()
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert a.column("prompt_id").to_pylist() == sorted(a.column("prompt_id").to_pylist())
    assert (tmp_path / "a/README.md").read_text() == (tmp_path / "b/README.md").read_text()


def test_split_buckets_cover_every_hash() -> None:
    assert {split_of(f"{b:08x}") for b in range(100)} == set(SPLITS)
    assert [split_of(f"{b:08x}") for b in (0, 71, 72, 79, 80, 97, 98, 99)] == [
        "train_sft",
        "train_sft",
        "test_sft",
        "test_sft",
        "train_gen",
        "train_gen",
        "test_gen",
        "test_gen",
    ]


def test_build_replaces_empty_or_earlier_folder_only(
    llamafactory_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    build_ultrachat_sample(llamafactory_dir, empty)  # the asset fetcher passes an empty folder
    build_ultrachat_sample(llamafactory_dir, empty)  # and a rebuild replaces it
    assert (empty / "README.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConflictError, match="mine exists and is not an empty folder"):
        build_ultrachat_sample(llamafactory_dir, other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_missing_source_file_is_an_asset_error(llamafactory_dir: Path, tmp_path: Path) -> None:
    (llamafactory_dir / "dpo_en_demo.json").unlink()
    with pytest.raises(AssetError, match=r"dpo_en_demo.json is missing .*assets fetch --force"):
        build_ultrachat_sample(llamafactory_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()
