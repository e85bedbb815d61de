"""`data validate` shows every problem: summary by kind, --max-errors, --json, --drop-invalid,
exit codes, non-UTF-8 bytes on their line, trailing user turns as warnings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from chattune.cli.data import app
from chattune.data.schema import DataValidationError
from chattune.errors import ChattuneError

runner = CliRunner()
U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}


def _bad_lines(i: int) -> dict[str, bytes]:
    """One broken row per kind (exactly one problem each), varied by ``i``."""
    u = {"role": "user", "content": f"question {i}"}

    def row(messages: list[object]) -> bytes:
        return json.dumps({"messages": messages}).encode()

    return {
        "two_in_a_row": row([u, u, A]),
        "unknown_role": row([u, A, {"role": "bot", "content": "x"}]),
        "empty_content": row([u, {"role": "assistant", "content": " "}]),
        "no_assistant": row([u]),
        "starts_with_assistant": row([A, u, A]),
        "system_not_first": row([u, A, {"role": "system", "content": "s"}]),
        "invalid_json": b'{"messages": [' + str(i).encode(),
        "not_utf8": b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',
    }


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """120 problems of 8 kinds (15 each) between 30 valid rows."""
    lines, valid = [], []
    for i in range(15):
        for line in _bad_lines(i).values():
            lines.append(line)
        for j in range(2):
            good = json.dumps({"messages": [{"role": "user", "content": f"ok {i} {j}"}, A]})
            lines.append(good.encode())
            valid.append(good.encode())
    path = tmp_path / "messy.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, valid


def _validate(*args: str) -> Result:
    return runner.invoke(app, ["validate", *args])


def _code(result: Result) -> int:
    """The exit code `chattune` gives: main() turns a ChattuneError into its exit_code."""
    if isinstance(result.exception, ChattuneError):
        return result.exception.exit_code
    return result.exit_code


def test_max_errors_0_lists_all_120_problems_with_a_summary(
    messy: tuple[Path, list[bytes]],
) -> None:
    path, _ = messy
    result = _validate(str(path), "--max-errors", "0")
    assert result.exit_code == 3
    out = result.stderr
    listed = [line for line in out.splitlines() if line.startswith("error: line ")]
    assert len(listed) == 120
    kinds = ", ".join(f"{kind} 15" for kind in _bad_lines(0))
    for kind in _bad_lines(0):
        assert f"{kind} 15" in out, kinds
    assert "line 8 of messy.jsonl: not valid UTF-8 at byte 47" in out
    assert "Traceback" not in out


def test_terminal_shows_the_first_50_by_default(messy: tuple[Path, list[bytes]]) -> None:
    path, _ = messy
    result = _validate(str(path))
    listed = [line for line in result.stderr.splitlines() if line.startswith("error: line ")]
    assert len(listed) == 50
    assert "and 70 more (--max-errors 0 shows all" in result.stderr
    shown = _validate(str(path), "--max-errors", "7").stderr
    assert len([x for x in shown.splitlines() if x.startswith("error: line ")]) == 7


def test_json_has_all_120_problems_on_failure(messy: tuple[Path, list[bytes]]) -> None:
    path, _ = messy
    result = _validate(str(path), "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["format"] == "messages"
    assert len(report["problems"]) == 120 and report["errors"] == 120
    assert report["summary"] == dict.fromkeys(_bad_lines(0), 15)
    assert (report["rows"], report["valid_rows"], report["invalid_rows"]) == (150, 30, 120)
    first = report["problems"][0]
    assert first == {
        "file": "messy.jsonl",
        "line": 1,
        "unit": "line",
        "field": "messages[1]",
        "message": "two user turns in a row",
        "kind": "two_in_a_row",
        "severity": "error",
        "text": "line 1 of messy.jsonl: messages[1]: two user turns in a row",
    }


def test_drop_invalid_writes_exactly_the_valid_rows_and_the_rejects(
    messy: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    path, valid = messy
    out = tmp_path / "clean" / "train.jsonl"
    result = _validate(str(path), "--drop-invalid", str(out))
    assert result.exit_code == 3
    assert [json.loads(x) for x in out.read_bytes().splitlines()] == [json.loads(v) for v in valid]
    rejects = [json.loads(x) for x in (tmp_path / "clean" / "train.jsonl.rejects.jsonl").open()]
    assert len(rejects) == 120
    assert rejects[0]["where"] == "line 1 of messy.jsonl"
    assert rejects[0]["problems"] == ["messages[1]: two user turns in a row"]
    assert rejects[0]["row"]["messages"][0]["content"] == "question 0"
    assert rejects[6] == {  # an unparsable row keeps its text
        "where": "line 7 of messy.jsonl",
        "problems": ["not valid JSON (Expecting ',' delimiter at column 16)"],
        "text": '{"messages": [0',
    }
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "train.jsonl",
        "train.jsonl.rejects.jsonl",
    ]
    assert _validate(str(out)).exit_code == 0  # the kept rows are clean


def test_non_utf8_is_a_problem_on_its_line_in_validate_and_in_the_job_stage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from chattune.train import validate
    from chattune.train.params import TrainParams
    from chattune.train.results import Hooks

    path = tmp_path / "t.jsonl"
    good = json.dumps({"messages": [U, A]}).encode()
    path.write_bytes(b"\n".join([good] * 6 + [b'{"messages": "\xff\xfe"}', good]) + b"\n")
    result = _validate(str(path))
    assert result.exit_code == 3
    assert "error: line 7 of t.jsonl: not valid UTF-8 at byte 15" in result.stderr
    with pytest.raises(DataValidationError) as info:  # the job's validate stage
        validate.run("tiny-random-phi3", {"train": str(path)}, TrainParams(), Hooks())
    assert info.value.message == "data.train: line 7 of t.jsonl: not valid UTF-8 at byte 15"
    (tmp_path / "l.json").write_bytes(b'[\n{"messages": []},\n{"x": "\xc3("}]')
    report = json.loads(_validate(str(tmp_path / "l.json"), "--json").stdout)
    assert report["problems"][0]["text"] == "line 3 of l.json: not valid UTF-8 at byte 8"


def test_trailing_user_turn_is_a_warning_naming_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from chattune.train import validate
    from chattune.train.params import TrainParams
    from chattune.train.results import Hooks

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps([U, A]) + "\n" + json.dumps([U, A, U]) + "\n")
    result = _validate(str(path))
    assert result.exit_code == 0
    assert (
        "warning: line 2 of t.jsonl: messages[2]: a user turn after the last assistant turn is "
        "never trained on"
    ) in " ".join(result.stdout.split())
    with caplog.at_level(logging.WARNING, logger="t"):
        hooks = Hooks(log=logging.getLogger("t"))
        assert validate.run(
            "tiny-random-phi3", {"train": str(path)}, TrainParams(), hooks
        ).rows == {"train": 2}
    assert "line 2 of t.jsonl: messages[2]: a user turn after" in caplog.text


def test_exit_codes_tell_unreadable_input_from_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hi")
    assert _code(_validate(str(tmp_path / "a.txt"))) == 2
    assert _code(_validate(str(tmp_path / "missing.jsonl"))) == 2
    (tmp_path / "broken.json").write_text('[{"messages": }]')
    broken = _validate(str(tmp_path / "broken.json"), "--json")
    assert broken.exit_code == 2
    assert json.loads(broken.stdout)["problems"][0]["kind"] == "unreadable_file"
    (tmp_path / "ok.jsonl").write_text(json.dumps([U, A]) + "\n")
    ok = _validate(str(tmp_path / "ok.jsonl"), "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["problems"] == []
    help_text = " ".join(runner.invoke(app, ["validate", "--help"]).stdout.split())
    assert "Exit codes: 0 no errors; 3 rows with problems; 2 input unreadable" in help_text
