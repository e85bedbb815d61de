"""download: local sources, folders, the hub path (faked), split mapping, counts, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest

from chattune.data import download as dl
from chattune.data.convert import to_row
from chattune.data.hub_layout import write_hub_folder
from chattune.errors import NotFoundError, RuntimeFailure, ValidationError

SIZES = {"train_sft": 40, "test_sft": 10, "train_gen": 20, "test_gen": 5}


def _rows(split: str, n: int) -> list[dict[str, Any]]:
    return [
        to_row(
            [
                {"role": "user", "content": f"{split} question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        )
        for i in range(n)
    ]


@pytest.fixture
def hub_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    write_hub_folder({s: _rows(s, n) for s, n in SIZES.items()}, folder)
    return folder


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_split_pc_of_each_split_from_a_local_source(hub_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    info = dl.download("ultrachat-sample", 10, out, local_sources={"ultrachat-sample": hub_folder})
    assert {s: i.rows for s, i in info.items()} == {
        "train_sft": 4,
        "test_sft": 1,
        "train_gen": 2,
        "test_gen": 1,
    }  # 0.5 rows → at least 1
    assert {s: (i.source_split, i.source_rows) for s, i in info.items()} == {
        s: (s, n) for s, n in SIZES.items()
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".manifest.json", *(f"{s}.jsonl" for s in SIZES)]
    )
    rows = _read(out / "train_sft.jsonl")
    assert len(rows) == 4 and all(r["prompt"].startswith("train_sft question") for r in rows)
    assert list(rows[0]) == ["prompt", "prompt_id", "messages"]


def test_sample_is_deterministic_per_seed(hub_folder: Path, tmp_path: Path) -> None:
    dl.download(str(hub_folder), 25, tmp_path / "a", seed=1)
    dl.download(str(hub_folder), 25, tmp_path / "b", seed=1)
    dl.download(str(hub_folder), 25, tmp_path / "c", seed=2)
    a, b, c = (_read(tmp_path / x / "train_sft.jsonl") for x in "abc")
    assert a == b
    assert a != c
    assert len({r["prompt_id"] for r in a}) == 10


def test_train_test_only_source_maps_to_sft_and_gen(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    write_hub_folder({"train": _rows("train", 20), "test": _rows("test", 10)}, folder)
    info = dl.download(str(folder), 50, tmp_path / "out")
    assert {s: (i.source_split, i.rows) for s, i in info.items()} == {
        "train_sft": ("train", 10),
        "test_sft": ("test", 5),
        "train_gen": ("train", 10),
        "test_gen": ("test", 5),
    }
    assert _read(tmp_path / "out/train_sft.jsonl") == _read(tmp_path / "out/train_gen.jsonl")


def test_train_only_source_gets_a_held_out_test_split(tmp_path: Path) -> None:
    folder = tmp_path / "trainonly"
    write_hub_folder({"train": _rows("train", 30)}, folder)
    info = dl.download(str(folder), 100, tmp_path / "out")
    assert (info["train_sft"].rows, info["test_sft"].rows) == (27, 3)
    train = {r["prompt_id"] for r in _read(tmp_path / "out/train_sft.jsonl")}
    test = {r["prompt_id"] for r in _read(tmp_path / "out/test_sft.jsonl")}
    assert not train & test


def test_plan_splits_rejects_unknown_names() -> None:
    assert dl.plan_splits(["train_sft", "test_sft"])["train_gen"] == "train_sft"
    with pytest.raises(ValidationError, match="cannot map source splits dev to train_sft"):
        dl.plan_splits(["dev"])


def test_unknown_names_and_bad_percent(tmp_path: Path) -> None:
    local = {"ultrachat-sample": tmp_path / "not-fetched"}
    with pytest.raises(NotFoundError) as info:
        dl.download("ultrachatt", 5, tmp_path / "o", local_sources=local)
    assert str(info.value) == (
        "unknown data source 'ultrachatt': not a local source (ultrachat-sample), folder or hub "
        "id (fix: use one of: ultrachat-sample, a dataset folder, or a hub id like "
        "HuggingFaceH4/ultrachat_200k)"
    )
    with pytest.raises(NotFoundError, match=r"'ultrachat-sample' is not available .*assets fetch"):
        dl.download("ultrachat-sample", 5, tmp_path / "o", local_sources=local)
    with pytest.raises(ValidationError, match=r"--split-pc 0: expected a percent in \(0, 100\]"):
        dl.download("ultrachat-sample", 0, tmp_path / "o", local_sources=local)
    assert not (tmp_path / "o").exists()


class _Hub:
    """Stands in for HfApi: the probe succeeds or raises ``error``."""

    error: BaseException | None = None

    def dataset_info(self, repo_id: str, timeout: float) -> None:
        if self.error is not None:
            raise self.error


def test_hub_id_goes_through_load_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    calls: list[str] = []

    def fake_load(source: str) -> datasets.DatasetDict:
        calls.append(source)
        return datasets.DatasetDict(
            {
                "train": datasets.Dataset.from_list(_rows("train", 10)),
                "validation": datasets.Dataset.from_list(_rows("val", 4)),
            }
        )

    monkeypatch.setattr(huggingface_hub, "HfApi", _Hub)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    info = dl.download("org/chat-set", 50, tmp_path / "out")
    assert calls == ["org/chat-set"]
    assert info["test_sft"].source_split == "validation"
    assert info["test_sft"].rows == 2


def test_hub_unreachable_or_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    hub = _Hub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub.error = ConnectionError("[Errno -2] Name or service not known")
    with pytest.raises(RuntimeFailure) as info:
        dl.download(
            "HuggingFaceH4/ultrachat_200k",
            5,
            tmp_path / "o",
            local_sources={"ultrachat-sample": tmp_path},
        )
    assert str(info.value) == (
        "cannot reach the Hugging Face hub for 'HuggingFaceH4/ultrachat_200k' (ConnectionError: "
        "[Errno -2] Name or service not known) (fix: offline? use a local source "
        "(ultrachat-sample) or a local dataset folder; with a cached copy set HF_HUB_OFFLINE=1)"
    )
    missing = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
    Exception.__init__(missing, "404")
    hub.error = missing
    with pytest.raises(NotFoundError, match="no hub dataset, local folder or local source named"):
        dl.download("org/nothing", 5, tmp_path / "o")


def test_sample_first_takes_the_head_of_each_split_and_the_manifest_says_so(
    hub_folder: Path, tmp_path: Path
) -> None:
    import hashlib

    out = tmp_path / "first"
    info = dl.download(str(hub_folder), 25, out, sample="first")
    for split, n in SIZES.items():
        head = [r["prompt"] for r in _rows(split, n)][: info[split].rows]
        assert [r["prompt"] for r in _read(out / f"{split}.jsonl")] == head
    manifest = json.loads((out / ".manifest.json").read_text())
    assert (manifest["sample"], manifest["seed"], manifest["split_pc"]) == ("first", None, 25)
    entry = manifest["splits"]["train_sft"]
    assert entry["rows"] == 10 and entry["source_rows"] == 40
    assert entry["sha256"] == hashlib.sha256((out / "train_sft.jsonl").read_bytes()).hexdigest()
    dl.download(str(hub_folder), 25, tmp_path / "random", seed=3)
    randomly = json.loads((tmp_path / "random" / ".manifest.json").read_text())
    assert (randomly["sample"], randomly["seed"]) == ("random", 3)
    with pytest.raises(ValidationError, match="--sample middle"):
        dl.download(str(hub_folder), 25, tmp_path / "x", sample="middle")


def test_sample_first_carves_the_test_split_from_the_tail_of_train(tmp_path: Path) -> None:
    folder = tmp_path / "train-only"
    write_hub_folder({"train": _rows("train", 20)}, folder)
    dl.download(str(folder), 100, tmp_path / "out", sample="first")
    train = [r["prompt"] for r in _read(tmp_path / "out" / "train_sft.jsonl")]
    test = [r["prompt"] for r in _read(tmp_path / "out" / "test_sft.jsonl")]
    assert train == [f"train question {i}" for i in range(18)]
    assert test == ["train question 18", "train question 19"]
