"""Read chat data files into validated conversations, one row at a time.

Files: ``.jsonl``, ``.json`` (a list of rows, or JSON lines), ``.parquet``, ``.csv``, and
local dataset folders in hub layout (one split, chosen by name). Row formats
(:mod:`chattune.data.formats`): ``messages`` (ultrachat rows or bare lists), ``sharegpt``,
``alpaca``, ``prompt_completion`` — detected from a file's first row unless given.

Rows are streamed: JSON lines and parquet batches are read as they come, so memory follows
the longest row, not the file (a ``.json`` list is parsed whole; use JSON lines for big data).
Every problem names where it is: ``line 17 of train.jsonl: messages[3]: two user turns in a
row`` (``line`` for JSON lines, ``row`` counted from 1 for the other files). Bytes that are
not UTF-8 are a problem on their line (``line 7 of t.jsonl: not valid UTF-8 at byte 135``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from chattune.data.digest import check_data_path
from chattune.data.formats import FORMATS, detect, to_messages
from chattune.data.hub_layout import DATA_SUFFIXES, split_files
from chattune.data.preference import PREFERENCE_FORMATS, PreferencePair, to_pair
from chattune.data.preference import detect as detect_preference
from chattune.data.schema import (
    Conversation,
    DataValidationError,
    Problem,
    UnreadableDataError,
    clean,
    conversation_problems,
)
from chattune.data.text import invalid_text, json_depth, surrogate_message
from chattune.errors import NotFoundError, ValidationError

DEFAULT_SPLITS = ("train_sft", "train", "test_sft", "test")
_UNREADABLE = object()
_JSON_COLUMNS = ("messages", "conversations", "history")


@dataclass
class Record:
    """One row as read: where it is, the raw row, and its conversation or its problems.

    ``raw`` is the parsed row, or the row's text when it could not be parsed. A row with only
    warnings still has its ``conversation``.
    """

    file: str
    number: int
    unit: str
    raw: Any
    conversation: Conversation | None = None
    problems: list[Problem] = field(default_factory=list)
    text: str | None = None
    """The row's text when it could not be parsed (for a rejects file)."""
    pair: PreferencePair | None = None
    """A preference row's pair (its ``conversation`` is the prompt and the chosen answer)."""

    @property
    def where(self) -> str:
        return f"{self.unit} {self.number} of {self.file}" if self.number else self.file

    @property
    def ok(self) -> bool:
        return all(p.severity != "error" for p in self.problems)


class DataReader:
    """Stream the :class:`Record` of every row of a file or dataset folder.

    ``fmt`` forces a row format (default: detected from the first row, then ``.format``
    says which). ``require_assistant`` is the training rule (every row needs an assistant
    turn); prompt-only splits pass False.

    Example::

        reader = DataReader("alpaca.json")
        good = [r.conversation for r in reader if r.ok]
        reader.format  # "alpaca"
    """

    def __init__(
        self,
        path: str | Path,
        split: str | None = None,
        *,
        fmt: str | None = None,
        role_map: Mapping[str, str] | None = None,
        require_assistant: bool = True,
    ) -> None:
        if fmt is not None and fmt not in FORMATS + PREFERENCE_FORMATS:
            raise ValidationError(
                f"unknown data format {fmt!r}",
                f"use one of {', '.join(FORMATS + PREFERENCE_FORMATS)}",
            )
        self.path = Path(path)
        self.split = split
        self.format = fmt
        self.role_map = dict(role_map or {})
        self.require_assistant = require_assistant

    def __iter__(self) -> Iterator[Record]:
        for record in _iter_rows(self.path, self.split):
            if record.raw is not _UNREADABLE:
                self._convert(record)
            else:
                record.raw = None
            yield record

    def _convert(self, record: Record) -> None:
        raw = record.raw
        bad = invalid_text(raw)
        if bad is not None:  # before anything tokenizes, prints or writes it
            where, at = bad
            text = surrogate_message(where, at).removeprefix(f"{where}: ")
            record.problems = [Problem("invalid_text", where, text)]
            return
        if self.format is None:
            # preference first: LLaMA-Factory's DPO rows hold ShareGPT conversations too
            self.format = detect_preference(raw) or detect(raw) or "messages"
        if self.format in PREFERENCE_FORMATS:
            self._convert_pair(record)
            return
        messages, problems = to_messages(raw, self.format, self.role_map)
        if not problems or messages is not None:
            problems += _renamed(
                conversation_problems(messages, require_assistant=self.require_assistant),
                self.format,
                raw,
            )
        record.problems = problems
        if record.ok:
            prompt, pid = _ids(raw)
            record.conversation = Conversation(clean(messages), prompt, pid, record.where)

    def _convert_pair(self, record: Record) -> None:
        assert self.format is not None
        pair, record.problems = to_pair(record.raw, self.format, self.role_map)
        if pair is not None and record.ok:
            record.pair = PreferencePair(pair.prompt, pair.chosen, pair.rejected, record.where)
            chosen = pair.conversation("chosen")
            record.conversation = Conversation(chosen, None, None, record.where)


def _renamed(problems: list[Problem], fmt: str, raw: Any) -> list[Problem]:
    """For ShareGPT rows, name the user's own list (``conversations[i]``), not ours."""
    if fmt != "sharegpt" or not isinstance(raw, dict):
        return problems
    offset = 1 if isinstance(raw.get("system"), str) and raw["system"] else 0
    out = []
    for p in problems:
        name = p.field
        if name.startswith("messages[") and "]" in name:
            index, rest = name[len("messages[") :].split("]", 1)
            name = f"conversations[{int(index) - offset}]{rest}"
        elif name.startswith("messages"):
            name = "conversations" + name[len("messages") :]
        out.append(Problem(p.kind, name, p.message, p.severity))
    return out


def _ids(raw: Any) -> tuple[str | None, str | None]:
    if not isinstance(raw, dict):
        return None, None
    prompt, pid = raw.get("prompt"), raw.get("prompt_id")
    if "messages" not in raw:  # a prompt/completion ``prompt`` is not an ultrachat id
        return None, None
    return (prompt if isinstance(prompt, str) else None, pid if isinstance(pid, str) else None)


def load_conversations(
    path: str | Path,
    split: str | None = None,
    *,
    require_assistant: bool = True,
    fmt: str | None = None,
) -> list[Conversation]:
    """Every row of a data file or dataset folder, validated; raises once with all problems.

    ``split`` picks the split of a dataset folder (default: ``train_sft``, else ``train``,
    else the only split); it is ignored for files. For big files prefer
    :func:`iter_conversations`, which does not hold the rows.

    Example::

        rows = load_conversations("data/train_sft.jsonl")
        rows[0].messages[0]["role"]  # "user"
        load_conversations("ultrachat-sample/", split="test_sft")
    """
    return list(iter_conversations(path, split, require_assistant=require_assistant, fmt=fmt))


def iter_conversations(
    path: str | Path,
    split: str | None = None,
    *,
    require_assistant: bool = True,
    fmt: str | None = None,
) -> Iterator[Conversation]:
    """Stream the conversations of a file; at the end, raise once if any row was bad.

    Callers that write as they read must write to a temporary file and rename it only when
    the iteration finished without an error.
    """
    path = Path(path)
    problems: list[str] = []
    rows = 0
    for record in DataReader(path, split, fmt=fmt, require_assistant=require_assistant):
        rows += 1
        problems += [f"{record.where}: {p.text}" for p in record.problems if p.severity == "error"]
        if record.conversation is not None and not problems:
            yield record.conversation
    if not problems and not rows:
        problems.append(f"{path.name}: no rows")
    if problems:
        raise DataValidationError(problems)


def iter_pairs(path: str | Path, split: str | None = None) -> Iterator[PreferencePair]:
    """Stream the preference pairs of a file (DPO data); at the end, raise once with every
    bad row. A file of chat rows (no chosen/rejected) is refused on its first row."""
    path = Path(path)
    problems: list[str] = []
    rows = 0
    reader = DataReader(path, split)
    for record in reader:
        rows += 1
        if reader.format is not None and reader.format not in PREFERENCE_FORMATS:
            raise ValidationError(
                f"{record.where}: a {reader.format} row; preference tuning needs preference "
                "rows (prompt, chosen, rejected)",
                f"use one of the formats {', '.join(PREFERENCE_FORMATS)}, or method: sft",
            )
        problems += [f"{record.where}: {p.text}" for p in record.problems if p.severity == "error"]
        if record.pair is not None and not problems:
            yield record.pair
    if not problems and not rows:
        problems.append(f"{path.name}: no rows")
    if problems:
        raise DataValidationError(problems)


def _iter_rows(path: Path, split: str | None = None) -> Iterator[Record]:
    """Every raw row of a file or folder; an unparsable one has ``raw`` ``_UNREADABLE``."""
    check_data_path(path)
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


def _iter_file(path: Path, name: str) -> Iterator[Record]:
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
        raise UnreadableDataError(
            f"{name}: unsupported file type {suffix or '(none)'!r}",
            "use .jsonl, .json, .parquet or .csv, or a dataset folder",
        )


def _unreadable(name: str, number: int, unit: str, kind: str, text: str, raw: str | None) -> Record:
    return Record(name, number, unit, _UNREADABLE, problems=[Problem(kind, "", text)], text=raw)


def _iter_jsonl(path: Path, name: str) -> Iterator[Record]:
    # Binary lines: a bad byte is a problem of its line, and the next line still reads.
    with path.open("rb") as f:
        for number, data in enumerate(_bounded_lines(f), start=1):
            if data is None:
                text = f"row longer than {MAX_ROW_BYTES >> 20} MiB (a row is one conversation)"
                yield _unreadable(name, number, "line", "row_too_long", text, None)
                continue
            if not data.strip():
                continue
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                text = f"not valid UTF-8 at byte {exc.start + 1}"
                shown = data.decode("utf-8", "replace").rstrip("\r\n")
                yield _unreadable(name, number, "line", "not_utf8", text, shown)
                continue
            try:
                yield Record(name, number, "line", _loads(line.strip()))
            except ValueError as exc:
                text = f"not valid JSON ({_json_reason(exc)})"
                yield _unreadable(name, number, "line", "invalid_json", text, line.rstrip("\r\n"))


MAX_ROW_BYTES = 32 << 20
"""Longest row (JSON line, CSV record) read: one conversation is kilobytes, rarely a few
megabytes; a longer "line" is a broken file (or ``/dev/zero``) that would fill memory."""


def _bounded_lines(f: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines, each at most :data:`MAX_ROW_BYTES` (None for a longer one, whose
    rest is skipped without being held)."""
    while True:
        line = f.readline(MAX_ROW_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_ROW_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # skip to the end of this long line
            line = f.readline(1 << 20)
        yield None


def _loads(text: str) -> Any:
    """``json.loads`` with nesting bounded: a row nested 100,000 deep is a problem of its
    row, not a ``RecursionError`` (and not a row to walk later)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_ROW_DEPTH} levels") from None
    if json_depth(value, MAX_ROW_DEPTH) > MAX_ROW_DEPTH:
        raise ValueError(f"nested deeper than {MAX_ROW_DEPTH} levels")
    return value


MAX_ROW_DEPTH = 32
"""A conversation row nests 4 levels (row, messages, message, content parts); 32 is lenient."""


def _decoded(path: Path, name: str) -> str | Record:
    """A whole file's text, or the record of its first non-UTF-8 byte (line and byte)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        text = f"not valid UTF-8 at byte {column}"
        return _unreadable(name, line, "line", "not_utf8", text, None)


def _iter_json(path: Path, name: str) -> Iterator[Record]:
    text = _decoded(path, name)
    if isinstance(text, Record):
        yield text
        return
    try:
        data = _loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines saved as .json
            del text
            yield from _iter_jsonl(path, name)
            return
        problem = f"not valid JSON ({_json_reason(exc)})"
        yield _unreadable(name, 0, "row", "unreadable_file", problem, None)
        return
    except ValueError as exc:  # nested too deep
        yield _unreadable(name, 0, "row", "unreadable_file", f"not readable ({exc})", None)
        return
    if not isinstance(data, list):
        problem = f"expected a JSON list of rows, got {type(data).__name__}"
        yield _unreadable(name, 0, "row", "unreadable_file", problem, None)
        return
    for number, row in enumerate(data, start=1):
        yield Record(name, number, "row", row)


def _iter_parquet(path: Path, name: str) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        problem = f"not a readable parquet file ({exc})"
        yield _unreadable(name, 0, "row", "unreadable_file", problem, None)
        return
    number = 0
    for batch in parquet.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            number += 1
            yield Record(name, number, "row", row)


def _iter_csv(path: Path, name: str) -> Iterator[Record]:
    csv.field_size_limit(MAX_ROW_BYTES)  # the default (128 KiB) refuses real long answers
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        try:
            columns = reader.fieldnames or []
            if not any(
                c in columns for c in ("messages", "conversations", "instruction", "prompt")
            ):
                problem = "no 'messages' column (a JSON list of {role, content})"
                yield _unreadable(name, 0, "row", "unreadable_file", problem, None)
                return
            for number, row in enumerate(reader, start=1):
                yield _csv_record(name, number, row)
        except csv.Error as exc:  # a field past the limit, a NUL byte, a broken quote
            problem = f"not readable as CSV ({exc}); rows after it were not read"
            yield _unreadable(name, reader.line_num, "row", "bad_csv", problem, None)
        except UnicodeDecodeError as exc:
            problem = f"not valid UTF-8 (at byte {exc.start + 1} of a read block)"
            yield _unreadable(name, reader.line_num + 1, "row", "not_utf8", problem, None)


def _csv_record(name: str, number: int, row: dict[str, Any]) -> Record:
    """A CSV row with its JSON-holding columns (messages, conversations, history) parsed."""
    for column in _JSON_COLUMNS:
        if column in row:
            try:
                row[column] = _loads(row[column] or "null")
            except ValueError as exc:
                problem = f"{column}: not valid JSON ({_json_reason(exc)})"
                return _unreadable(name, number, "row", "invalid_json", problem, json.dumps(row))
    return Record(name, number, "row", row)


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"{exc.msg} at column {exc.colno}"
            if exc.lineno == 1
            else (f"{exc.msg} at line {exc.lineno} column {exc.colno}")
        )
    return str(exc)
