"""The token store: flat int32 arrays plus offsets, streamed to disk, memory-mapped back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chattune.errors import ValidationError
from chattune.train import preprocess
from chattune.train.packing import PackedRows, pack
from chattune.train.results import Hooks, ImportedModel
from chattune.train.template import IGNORE, Example
from chattune.train.tokens import SplitWriter, TokenSplit, open_split

ROWS = [
    Example([1, 2, 3], [IGNORE, 2, 3]),
    Example([70_000, 5], [IGNORE, 5]),  # an id above 2**16: int32, not int16
    Example(list(range(10, 19)), [IGNORE] * 4 + list(range(14, 19))),
]


def _write(folder: Path, rows: list[Example]) -> TokenSplit:
    with SplitWriter(folder) as out:
        for ex in rows:
            out.add(ex.input_ids, ex.labels)
        out.commit()
    return open_split(folder)


def test_rows_round_trip_through_flat_arrays_and_offsets(tmp_path: Path) -> None:
    split = _write(tmp_path / "train.tokens", ROWS)
    assert len(split) == 3 and list(split) == ROWS
    assert split[-1] == ROWS[2] and split[1:] == ROWS[1:]
    assert split.offsets.tolist() == [0, 3, 5, 14] and split.lengths().tolist() == [3, 2, 9]
    assert isinstance(split.input_ids, np.memmap) and split.input_ids.dtype == np.int32
    # Plain .npy files: numpy reads them without chattune, headers give the final lengths.
    assert np.load(tmp_path / "train.tokens" / "labels.npy").shape == (14,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.tokens"]
    with pytest.raises(IndexError):
        split[3]


def test_an_error_while_writing_leaves_nothing_and_keeps_the_earlier_split(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "train.tokens"
    _write(folder, ROWS[:1])
    with pytest.raises(RuntimeError, match="late"), SplitWriter(folder) as out:
        out.add(ROWS[1].input_ids, ROWS[1].labels)
        raise RuntimeError("a bad row found late")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.tokens"]  # no staging left
    assert list(open_split(folder)) == ROWS[:1]
    _write(folder, ROWS[1:])  # a new run replaces it whole
    assert list(open_split(folder)) == ROWS[1:]


def test_an_old_json_lines_cache_is_refused_in_one_line(tmp_path: Path) -> None:
    old = tmp_path / "train.jsonl"
    old.write_text(json.dumps({"input_ids": [1], "labels": [1]}) + "\n")
    with pytest.raises(ValidationError, match=r"not a preprocessed split \(no input_ids\.npy"):
        open_split(old)


def test_a_split_with_no_assistant_tokens_left_is_refused_and_nothing_is_written(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "t.jsonl"
    long = {"role": "user", "content": "tell me " * 200}
    path.write_text(json.dumps([long, {"role": "assistant", "content": "Ok."}]) + "\n")
    model = ImportedModel(
        model_dir=str(tiny_model_dir), model="tiny", model_type="phi3", context_length=4096
    )
    with pytest.raises(ValidationError, match="no assistant tokens left after truncation to 16"):
        preprocess.run(model, {"train": str(path)}, 16, tmp_path / "p", Hooks())
    assert list((tmp_path / "p").iterdir()) == []


def test_packed_rows_take_examples_by_offset_as_pack_groups_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [Example(ids, ids) for ids in (list(range(n)) for n in rng.integers(1, 40, 200))]
    split = _write(tmp_path / "s.tokens", rows)
    packed = PackedRows.of(split, 64, packing=True)
    groups = pack([len(e.input_ids) for e in rows], 64)
    assert len(packed) == len(groups)
    assert [packed[r] for r in range(len(packed))] == [[rows[i] for i in g] for g in groups]
    assert packed.examples is split  # evaluation scores the split itself, row by row
    assert [r[0] for r in PackedRows.of(split, 64, packing=False)] == rows
    in_memory = PackedRows.of(rows, 64, packing=True)  # a plain list packs the same way
    assert [in_memory[r] for r in range(len(in_memory))] == [packed[r] for r in range(len(packed))]


def test_training_reads_rows_from_the_memory_map_only_when_a_batch_takes_them(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chattune.train import finetune
    from chattune.train.params import TrainParams
    from chattune.train.scoring import score

    path = tmp_path / "t.jsonl"
    convs = [
        [{"role": "user", "content": f"Count to {i}."}, {"role": "assistant", "content": "1 2"}]
        for i in range(30)
    ]
    path.write_text("".join(json.dumps(c) + "\n" for c in convs))
    model = ImportedModel(
        model_dir=str(tiny_model_dir), model="tiny", model_type="phi3", context_length=4096
    )
    test_path = tmp_path / "test.jsonl"
    test_path.write_text("".join(json.dumps(c) + "\n" for c in convs[:3]))
    splits = {"train": str(path), "test": str(test_path)}
    data = preprocess.run(model, splits, 64, tmp_path, Hooks())
    read: list[int] = []
    get = TokenSplit.__getitem__
    monkeypatch.setattr(TokenSplit, "__getitem__", lambda s, i: read.append(1) or get(s, i))
    params = TrainParams(max_steps=1, per_device_train_batch_size=2, evaluation_strategy="no")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = finetune.build_trainer(lm, tokenizer, data, params, tmp_path / "ft", Hooks())
    rows = trainer.train_dataset
    assert isinstance(rows, PackedRows) and isinstance(rows.examples.input_ids, np.memmap)
    assert read == []  # packed from the offsets alone: no row read, none held
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 2
    # The examples of the batch's two rows and of the next batch (accelerate reads one
    # ahead), not the split's 30.
    assert 0 < len(read) <= 4 * int(np.diff(rows.bounds).max()) < 30
    test = preprocess.read_examples(data.splits["test"].file)
    expected = score(lm.eval(), list(test))["loss"]
    assert trainer.evaluate(PackedRows.of(test, 64, True))["eval_loss"] == pytest.approx(expected)
