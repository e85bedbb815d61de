"""``data validate`` and ``data convert``: one streaming pass, every problem reported.

The report lists every problem (file, line, field, message, kind, severity) and counts them
by kind; ``--drop-invalid OUT`` writes the valid rows to OUT and each rejected row with its
reasons to ``OUT.rejects.jsonl``, both through temporary files renamed at the end, so an
interrupted run leaves no half-written output.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from chattune.data.convert import prompt_id
from chattune.data.readers import DataReader, Record
from chattune.data.schema import DataValidationError

UNREADABLE_KINDS = frozenset({"unreadable_file"})


def validate_file(
    path: str | Path,
    split: str | None = None,
    *,
    fmt: str | None = None,
    role_map: Mapping[str, str] | None = None,
    drop_invalid: str | Path | None = None,
) -> dict[str, Any]:
    """The full report of a data file; with ``drop_invalid``, also the split files.

    Example::

        report = validate_file("train.jsonl", drop_invalid="clean.jsonl")
        report["summary"]  # {"two_in_a_row": 3, "not_utf8": 1}
    """
    reader = DataReader(path, split, fmt=fmt, role_map=role_map)
    tally = _Tally()
    with ExitStack() as stack:
        sinks = _open_sinks(stack, Path(drop_invalid)) if drop_invalid is not None else None
        for record in reader:
            tally.add(record)
            if sinks is not None:
                _write_record(sinks, record)
        if sinks is not None:
            _commit(sinks)
    report = tally.report(str(path), reader.format)
    if drop_invalid is not None:
        report["drop_invalid"] = {
            "valid": str(drop_invalid),
            "rejects": str(rejects_path(Path(drop_invalid))),
        }
    return report


class _Tally:
    """Counts and problems of the rows seen so far (rows themselves are not kept)."""

    def __init__(self) -> None:
        self.rows = self.valid = self.messages = self.assistant = self.system = 0
        self.problems: list[dict[str, Any]] = []
        self.kinds: Counter[str] = Counter()

    def add(self, record: Record) -> None:
        self.rows += record.number > 0
        for p in record.problems:
            self.kinds[p.kind] += 1
            self.problems.append(
                {
                    "file": record.file,
                    "line": record.number or None,
                    "unit": record.unit,
                    "field": p.field,
                    "message": p.message,
                    "kind": p.kind,
                    "severity": p.severity,
                    "text": f"{record.where}: {p.text}",
                }
            )
        conv = record.conversation
        if conv is not None:
            self.valid += 1
            self.messages += len(conv.messages)
            self.assistant += sum(m["role"] == "assistant" for m in conv.messages)
            self.system += conv.messages[0]["role"] == "system"

    def report(self, path: str, fmt: str | None) -> dict[str, Any]:
        errors = sum(p["severity"] == "error" for p in self.problems)
        if not self.rows and not errors:
            self.add_empty(path)
            errors = 1
        return {
            "path": path,
            "format": fmt,
            "ok": errors == 0,
            "unreadable": any(k in UNREADABLE_KINDS for k in self.kinds),
            "rows": self.rows,
            "valid_rows": self.valid,
            "invalid_rows": self.rows - self.valid,
            "messages": self.messages,
            "assistant_turns": self.assistant,
            "rows_with_system": self.system,
            "errors": errors,
            "warnings": len(self.problems) - errors,
            "summary": dict(self.kinds.most_common()),
            "problems": self.problems,
        }

    def add_empty(self, path: str) -> None:
        name = Path(path).name
        self.kinds["no_rows"] += 1
        self.problems.append(
            {
                "file": name,
                "line": None,
                "unit": "row",
                "field": "",
                "message": "no rows",
                "kind": "no_rows",
                "severity": "error",
                "text": f"{name}: no rows",
            }
        )


def rejects_path(out: Path) -> Path:
    """Where ``--drop-invalid OUT`` puts the rejected rows: ``OUT.rejects.jsonl``."""
    return out.with_name(out.name + ".rejects.jsonl")


def _open_sinks(stack: ExitStack, out: Path) -> dict[Path, IO[str]]:
    out.parent.mkdir(parents=True, exist_ok=True)
    sinks: dict[Path, IO[str]] = {}
    for final in (out, rejects_path(out)):
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        stack.callback(tmp.unlink, missing_ok=True)  # gone after a rename
        sinks[final] = stack.enter_context(open(tmp, "w", encoding="utf-8"))  # noqa: SIM115
    return sinks


def _write_record(sinks: dict[Path, IO[str]], record: Record) -> None:
    valid, rejects = sinks.values()
    if record.number == 0:  # a whole-file problem is no row to keep or reject
        return
    if record.ok:
        valid.write(json.dumps(record.raw, ensure_ascii=False) + "\n")
        return
    entry: dict[str, Any] = {
        "where": record.where,
        "problems": [p.text for p in record.problems],
    }
    entry.update({"row": record.raw} if record.text is None else {"text": record.text})
    rejects.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _commit(sinks: dict[Path, IO[str]]) -> None:
    for final, f in sinks.items():
        f.close()
        os.replace(f.name, final)


def convert_file(
    src: str | Path,
    out: str | Path,
    *,
    fmt: str | None = None,
    role_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write every row of ``src`` as an ultrachat ``messages`` row (JSONL) to ``out``.

    All or nothing: any invalid row raises :class:`DataValidationError` naming every
    problem, and ``out`` is left untouched.

    Example: ``convert_file("alpaca.json", "train.jsonl")`` → ``{"rows": 52, "format": "alpaca"}``
    """
    reader = DataReader(src, fmt=fmt, role_map=role_map)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    problems: list[str] = []
    rows = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for record in reader:
                problems += [
                    f"{record.where}: {p.text}" for p in record.problems if p.severity == "error"
                ]
                if record.conversation is None or problems:
                    continue
                rows += 1
                f.write(json.dumps(_ultrachat(record), ensure_ascii=False) + "\n")
        if not problems and not rows:
            problems.append(f"{Path(src).name}: no rows")
        if problems:
            raise DataValidationError(problems)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "rows": rows, "format": reader.format}


def _ultrachat(record: Record) -> dict[str, Any]:
    conv = record.conversation
    assert conv is not None
    prompt = conv.prompt
    if prompt is None:
        prompt = next((m["content"] for m in conv.messages if m["role"] == "user"), "")
    return {
        "prompt": prompt,
        "prompt_id": conv.prompt_id or prompt_id(prompt),
        "messages": conv.messages,
    }
