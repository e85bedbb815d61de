"""Reading data files: every format, both row shapes, and the exact error text."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chattune.data.readers import load_conversations
from chattune.data.schema import DataValidationError
from chattune.errors import NotFoundError, ValidationError

GOOD = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _problems(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataValidationError) as info:
        load_conversations(path, **kwargs)  # type: ignore[arg-type]
    return info.value.message


def test_jsonl_ultrachat_rows_and_bare_lists(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "train.jsonl",
        [
            json.dumps({"prompt": "hi", "prompt_id": "abc", "messages": GOOD}),
            "",
            json.dumps([{"role": "system", "content": "s", "extra": 1}, *GOOD]),
        ],
    )
    rows = load_conversations(path)
    assert [r.where for r in rows] == ["line 1 of train.jsonl", "line 3 of train.jsonl"]
    assert (rows[0].prompt, rows[0].prompt_id, rows[0].messages) == ("hi", "abc", GOOD)
    assert rows[1].messages[0] == {"role": "system", "content": "s"}  # extra keys dropped
    assert rows[1].prompt is None


def test_jsonl_errors_name_line_and_field(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "train.jsonl",
        [
            json.dumps({"messages": GOOD}),
            json.dumps({"messages": [GOOD[0], GOOD[0], GOOD[1]]}),
            '{"messages": [',
            json.dumps({"messages": [{"role": "bot", "content": "x"}, GOOD[1]]}),
            json.dumps({"conversations": []}),
        ],
    )
    assert _problems(path) == (
        "line 2 of train.jsonl: messages[1]: two user turns in a row; "
        "line 3 of train.jsonl: not valid JSON (Expecting value at column 15); "
        "line 4 of train.jsonl: messages[0]: unknown role 'bot' (expected system, user or "
        "assistant); "
        "line 5 of train.jsonl: no 'messages' field (got keys: conversations); this file's rows "
        "are messages (--from to choose)"
    )


def test_all_problems_are_collected_and_the_first_five_shown(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [json.dumps([GOOD[1]])] * 7)
    with pytest.raises(DataValidationError) as info:
        load_conversations(path)
    assert len(info.value.problems) == 7
    assert info.value.message.count("must start with a user turn") == 5
    assert info.value.message.endswith(
        "line 5 of t.jsonl: messages[0]: the conversation must start with a user turn, got "
        "assistant; and 2 more problems"
    )
    assert "alternating" in info.value.hint


def test_no_assistant_turn_and_empty_content(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(
        json.dumps(
            [
                {"messages": [GOOD[0]]},
                {"messages": [GOOD[0], {"role": "assistant", "content": ""}]},
            ]
        )
    )
    assert _problems(path) == (
        "row 1 of train.json: messages: no assistant turn (training needs at least one); "
        "row 2 of train.json: messages[1].content: empty"
    )
    prompts_only = _jsonl(tmp_path / "gen.jsonl", [json.dumps([GOOD[0]])])
    assert load_conversations(prompts_only, require_assistant=False)[0].messages == [GOOD[0]]


def test_json_lines_saved_as_json_and_invalid_json(tmp_path: Path) -> None:
    lines = tmp_path / "rows.json"
    lines.write_text(json.dumps({"messages": GOOD}) + "\n" + json.dumps(GOOD) + "\n")
    assert len(load_conversations(lines)) == 2
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"messages": }]')
    assert _problems(broken) == "broken.json: not valid JSON (Expecting value at line 2 column 14)"


def test_csv_messages_column(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('id,messages\n1,"' + json.dumps(GOOD).replace('"', '""') + '"\n2,"[oops"\n')
    assert _problems(path) == (
        "row 2 of train.csv: messages: not valid JSON (Expecting value at column 2)"
    )
    path.write_text("id,text\n1,hello\n")
    assert _problems(path) == ("train.csv: no 'messages' column (a JSON list of {role, content})")


def test_parquet_and_dataset_folder_choose_split(tmp_path: Path, sample_dir: Path) -> None:
    table = pa.Table.from_pylist([{"messages": GOOD}, {"messages": [GOOD[1]]}])
    pq.write_table(table, tmp_path / "train.parquet")
    assert _problems(tmp_path / "train.parquet") == (
        "row 2 of train.parquet: messages[0]: the conversation must start with a user turn, "
        "got assistant"
    )
    default = load_conversations(sample_dir)
    assert default[0].where == ("row 1 of ultrachat-sample/data/train_sft-00000-of-00001.parquet")
    test_gen = load_conversations(sample_dir, split="test_gen")
    assert test_gen[0].where.startswith("row 1 of ultrachat-sample/data/test_gen-")
    assert all(c.prompt_id for c in default + test_gen)
    with pytest.raises(NotFoundError, match=r"has no split 'dev'.*train_sft, test_sft, train_gen"):
        load_conversations(sample_dir, split="dev")


def test_folder_without_readme_infers_splits_from_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    _jsonl(folder / "train_sft.jsonl", [json.dumps({"messages": GOOD})])
    _jsonl(folder / "test_sft.jsonl", [json.dumps({"messages": GOOD})] * 2)
    assert len(load_conversations(folder)) == 1
    assert len(load_conversations(folder, split="test_sft")) == 2


def test_missing_path_unsupported_type_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no data file or folder at"):
        load_conversations(tmp_path / "nope.jsonl")
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(ValidationError, match=r"a.txt: unsupported file type '.txt'"):
        load_conversations(tmp_path / "a.txt")
    (tmp_path / "empty.jsonl").write_text("\n")
    assert _problems(tmp_path / "empty.jsonl") == "empty.jsonl: no rows"
