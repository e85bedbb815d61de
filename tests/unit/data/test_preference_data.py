"""Preference rows: the three shapes detected, every bad row named with its line and field,
all at once, and a 50 MB row refused on its line without being held."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from chattune.data.readers import DataReader, iter_pairs
from chattune.data.report import validate_file
from chattune.data.schema import DataValidationError
from chattune.errors import ValidationError

USER = {"role": "user", "content": "2+2?"}


def answer(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("row", "fmt"),
    [
        ({"prompt": "2+2?", "chosen": [USER, answer("4")], "rejected": [USER, answer("5")]},
         "ultrafeedback_binarized"),
        ({"prompt": [USER], "chosen": [answer("4")], "rejected": [answer("5")]},
         "ultrafeedback_binarized"),
        ({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "prompt_chosen_rejected"),
        ({"conversations": [{"from": "human", "value": "2+2?"}],
          "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
         "sharegpt_dpo"),
    ],
)  # fmt: skip
def test_each_shape_is_detected_and_read_as_the_same_pair(
    tmp_path: Path, row: dict[str, object], fmt: str
) -> None:
    path = write(tmp_path / "p.jsonl", [row])
    reader = DataReader(path)
    (record,) = list(reader)
    assert reader.format == fmt
    assert record.pair is not None
    assert record.pair.prompt == [USER]
    assert (record.pair.chosen["content"], record.pair.rejected["content"]) == ("4", "5")
    assert [p.prompt for p in iter_pairs(path)] == [[USER]]


def test_bad_rows_are_all_reported_with_line_and_field(tmp_path: Path) -> None:
    rows = [
        {"prompt": "x", "chosen": [USER, answer("4")], "rejected": [USER, answer("5")]},
        {"prompt": "x", "chosen": [USER, answer("same")], "rejected": [USER, answer("same")]},
        {"prompt": "x", "chosen": [USER, {"role": "user", "content": ""}],
         "rejected": [USER, answer("5")]},
        {"prompt": "x", "chosen": [answer("hi"), answer("4")],
         "rejected": [answer("hi"), answer("5")]},
        {"prompt": "x", "chosen": [USER, answer("4")], "rejected": [answer("5")]},
    ]  # fmt: skip
    report = validate_file(write(tmp_path / "p.jsonl", rows))
    texts = [p["text"] for p in report["problems"]]
    assert texts == [
        "line 2 of p.jsonl: chosen: chosen and rejected are the same text",
        "line 3 of p.jsonl: chosen: expected an assistant answer, got role 'user'",
        "line 3 of p.jsonl: chosen.content: empty",
        "line 4 of p.jsonl: chosen[0]: the conversation must start with a user turn, got assistant",
        "line 4 of p.jsonl: chosen[0]: the prompt must end with a user turn (the answers "
        "follow it)",
        "line 5 of p.jsonl: rejected: chosen and rejected differ before their last message "
        "(they share the prompt)",
    ]
    assert (report["rows"], report["valid_rows"]) == (5, 1)
    with pytest.raises(DataValidationError) as caught:
        list(iter_pairs(tmp_path / "p.jsonl"))
    assert len(caught.value.problems) == 6  # all at once, not the first only


def test_chat_rows_are_refused_for_preference_tuning(tmp_path: Path) -> None:
    path = write(tmp_path / "chat.jsonl", [{"messages": [USER, answer("4")]}])
    with pytest.raises(ValidationError, match=r"line 1 of chat\.jsonl: a messages row; preference"):
        list(iter_pairs(path))


def test_a_50_mb_row_is_a_problem_of_its_line_not_a_memory_spike(tmp_path: Path) -> None:
    huge = {"prompt": "x" * (50 << 20), "chosen": "4", "rejected": "5"}
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5"}) + "\n")
        f.write(json.dumps(huge) + "\n")
    del huge
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = validate_file(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [p["text"] for p in report["problems"]] == [
        "line 2 of big.jsonl: row longer than 32 MiB (a row is one conversation)"
    ]
    assert grown_mb < 40, f"peak memory grew {grown_mb:.0f} MB reading a 50 MB row"
