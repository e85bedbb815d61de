"""Hostile data inputs, through the real CLI: every data command and `jobs create --dry-run`
answers each in one line (no traceback), bounded in time and memory.

Before: a FIFO blocked forever, a ``.jsonl`` linked to ``/dev/zero`` filled 4 GB, a 50 MB
one-line JSON array took 2 GB and minutes, a CSV field past 131,072 characters and a row
nested 100,000 deep were tracebacks, and a folder as ``data.train`` hashed every file
beneath it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.cli import chattune

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def fifo(folder: Path) -> Path:
    path = folder / "train.jsonl"
    os.mkfifo(path)
    return path


def dev_zero(folder: Path) -> Path:
    path = folder / "train.jsonl"
    path.symlink_to("/dev/zero")
    return path


def one_line_array(folder: Path) -> Path:
    path = folder / "train.jsonl"
    path.write_text("[" + "1," * (25 << 20) + "1]\n" + json.dumps(GOOD) + "\n")  # 50 MB
    return path


def nested(folder: Path) -> Path:
    path = folder / "train.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    return path


def csv_field(size: int) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "train.csv"
        row = [{"role": "user", "content": "x" * size}, {"role": "assistant", "content": "y"}]
        text = json.dumps(row).replace('"', '""')
        path.write_text(f'messages\n"{text}"\n')
        return path

    return make


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "FIFO": (fifo, "not a regular file"),
    "link to /dev/zero": (dev_zero, "not a regular file"),
    "50 MB one-line array": (one_line_array, "row longer than 32 MiB"),
    "nested 100,000 deep": (nested, "nested deeper than 32 levels"),
    "CSV field past 32 MiB": (csv_field(33 << 20), "not readable as CSV"),
}
COMMANDS = {
    "validate": lambda data, out: ["data", "validate", str(data)],
    "show": lambda data, out: ["data", "show", str(data)],
    "convert": lambda data, out: ["data", "convert", str(data), str(out)],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_data_gets_one_line_and_no_output(tmp_path: Path, case: str, command: str) -> None:
    make, expected = CASES[case]
    data, out = make(tmp_path), tmp_path / "out.jsonl"
    done = chattune(*COMMANDS[command](data, out), check=False, timeout=20)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert "Traceback" not in said and expected in said, said
    assert not out.exists()


@pytest.mark.parametrize("case", ["FIFO", "link to /dev/zero"])  # rows: the validate stage
def test_hostile_data_in_a_job_spec_fails_its_dry_run_in_one_line(
    tmp_path: Path, case: str
) -> None:
    make, expected = CASES[case]
    data = make(tmp_path)
    spec = tmp_path / "job.yaml"
    spec.write_text(f"model: tiny-random-phi3\ndata: {{train: {data}}}\n")
    done = chattune("jobs", "create", "-f", str(spec), "--dry-run", check=False, timeout=20)
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in said, said
    assert expected in said, said


def test_a_long_csv_field_is_a_row_like_any_other(tmp_path: Path) -> None:
    data = csv_field(200_000)(tmp_path)  # past csv's default 131,072-character limit
    done = chattune("data", "validate", str(data), check=False, timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_folder_of_other_files_is_not_hashed_whole(tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    with (folder / "unrelated.bin").open("wb") as f:  # 64 GB, sparse: costs no disk
        f.truncate(64 << 30)
    spec = tmp_path / "job.yaml"
    spec.write_text(f"model: tiny-random-phi3\ndata: {{train: {folder}}}\n")
    done = chattune("jobs", "create", "-f", str(spec), "--dry-run", check=False, timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
