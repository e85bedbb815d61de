"""Read chat data files into validated conversations.

Formats: ``.jsonl``, ``.json`` (a list of rows, or JSON lines), ``.parquet``, ``.csv`` (a
``messages`` column holding JSON), and local dataset folders in hub layout (one split,
chosen by name). A row is an ultrachat row ``{"prompt", "prompt_id", "messages"}`` or a bare
``[{"role", "content"}, ...]`` list.

Every problem of every row is collected and raised once, each naming where it is:
``line 17 of train.jsonl: messages[3]: two user turns in a row`` (``line`` for JSON lines,
``row`` counted from 1 for the other formats).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chattune.data.hub_layout import DATA_SUFFIXES, split_files
from chattune.data.schema import (
    Conversation,
    DataValidationError,
    clean,
    row_messages,
    shape_problem,
    validate_conversation,
)
from chattune.errors import NotFoundError, ValidationError

DEFAULT_SPLITS = ("train_sft", "train", "test_sft", "test")
_UNREADABLE = object()


def load_conversations(
    path: str | Path, split: str | None = None, *, require_assistant: bool = True
) -> list[Conversation]:
    """Every row of a data file or dataset folder, validated; raises once with all problems.

    ``split`` picks the split of a dataset folder (default: ``train_sft``, else ``train``,
    else the only split); it is ignored for files.

    Example::

        rows = load_conversations("data/train_sft.jsonl")
        rows[0].messages[0]["role"]  # "user"
        load_conversations("ultrachat-sample/", split="test_sft")
    """
    path = Path(path)
    problems: list[str] = []
    conversations: list[Conversation] = []
    for where, row in _iter_rows(path, split):
        if row is _UNREADABLE:
            problems.append(where)
            continue
        problem = shape_problem(row)
        messages, prompt, prompt_id = row_messages(row)
        row_problems = (
            [problem]
            if problem
            else validate_conversation(messages, require_assistant=require_assistant)
        )
        if row_problems:
            problems.extend(f"{where}: {p}" for p in row_problems)
        else:
            conversations.append(Conversation(clean(messages), prompt, prompt_id, where))
    if not problems and not conversations:
        problems.append(f"{path.name}: no rows")
    if problems:
        raise DataValidationError(problems)
    return conversations


def _iter_rows(path: Path, split: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(where, raw row)`` pairs of a file or folder; an unparsable row comes as
    ``(problem text, _UNREADABLE)``."""
    if not path.exists():
        raise NotFoundError(f"no data file or folder at {path}", "check the path")
    if path.is_dir():
        for file in split_file_list(path, split):
            yield from _iter_file(file, f"{path.name}/{file.relative_to(path)}")
        return
    yield from _iter_file(path, path.name)


def split_file_list(folder: Path, split: str | None) -> list[Path]:
    """The files of one split of a dataset folder (``split`` None: the default split)."""
    splits = split_files(folder)
    if not splits:
        raise ValidationError(
            f"{folder} holds no dataset files ({', '.join(DATA_SUFFIXES)})",
            "pass a data file or a dataset folder in hub layout",
        )
    if split is None:
        split = next((s for s in DEFAULT_SPLITS if s in splits), None)
        if split is None and len(splits) == 1:
            split = next(iter(splits))
    if split not in splits:
        raise NotFoundError(
            f"{folder} has no split {split!r}" if split else f"{folder} has several splits",
            f"choose a split: {', '.join(splits)}",
        )
    files = splits[split]
    if not files:
        raise NotFoundError(f"split {split!r} of {folder} matches no files", "check README.md")
    return files


def _iter_file(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _iter_jsonl(path, name)
    elif suffix == ".json":
        yield from _iter_json(path, name)
    elif suffix == ".parquet":
        yield from _iter_parquet(path, name)
    elif suffix == ".csv":
        yield from _iter_csv(path, name)
    else:
        raise ValidationError(
            f"{name}: unsupported file type {suffix or '(none)'!r}",
            "use .jsonl, .json, .parquet or .csv, or a dataset folder",
        )


def _iter_jsonl(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            where = f"line {number} of {name}"
            try:
                yield where, json.loads(line)
            except ValueError as exc:
                yield f"{where}: not valid JSON ({_json_reason(exc)})", _UNREADABLE


def _iter_json(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines saved as .json
            yield from _iter_jsonl(path, name)
            return
        yield f"{name}: not valid JSON ({_json_reason(exc)})", _UNREADABLE
        return
    if not isinstance(data, list):
        yield f"{name}: expected a JSON list of rows, got {type(data).__name__}", _UNREADABLE
        return
    for number, row in enumerate(data, start=1):
        yield f"row {number} of {name}", row


def _iter_parquet(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        yield f"{name}: not a readable parquet file ({exc})", _UNREADABLE
        return
    for number, row in enumerate(table.to_pylist(), start=1):
        yield f"row {number} of {name}", row


def _iter_csv(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if "messages" not in (reader.fieldnames or []):
            yield f"{name}: no 'messages' column (a JSON list of {{role, content}})", _UNREADABLE
            return
        for number, row in enumerate(reader, start=1):
            where = f"row {number} of {name}"
            try:
                yield where, {**row, "messages": json.loads(row["messages"] or "null")}
            except ValueError as exc:
                yield f"{where}: messages: not valid JSON ({_json_reason(exc)})", _UNREADABLE


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"{exc.msg} at column {exc.colno}"
            if exc.lineno == 1
            else (f"{exc.msg} at line {exc.lineno} column {exc.colno}")
        )
    return str(exc)
