"""A failed stage leaves one line in the job log (what `jobs stream` prints) and its
traceback in tracebacks.log beside it; before, every failure printed a whole traceback,
user errors (``/dev/null`` as data, a bad ``lora_target_modules``) included."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chattune.errors import ValidationError
from chattune.jobs.pipeline import Inputs
from chattune.jobs.runner import TRACEBACKS, _log_failure
from chattune.jobs.spec import parse_spec
from chattune.train.params import TrainParams
from chattune.train.results import Hooks


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Inputs, list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    log = logging.getLogger(f"test.joblog.{id(lines)}")
    log.addHandler(Keep())
    spec = parse_spec({"model": "tiny-random-phi3", "data": {"train": "t.jsonl"}})
    return Inputs(spec, TrainParams(), tmp_path, Hooks(log)), lines


def raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_a_user_error_is_one_line(inputs: tuple[Inputs, list[str]]) -> None:
    job, lines = inputs
    error = raised(ValidationError("data.train: /dev/null is not a regular file", "fix it"))
    _log_failure(job, "validate", str(error), error)
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith("stage validate failed: data.train: /dev/null")
    assert "Traceback" in (job.job_dir / TRACEBACKS).read_text()


def test_a_bug_is_one_line_that_says_where_its_traceback_is(
    inputs: tuple[Inputs, list[str]],
) -> None:
    job, lines = inputs
    error = raised(ValueError("Target modules {'nope'} not found in the base model"))
    _log_failure(job, "finetune", f"ValueError: {error}", error)
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].endswith(f"(traceback in {job.job_dir / TRACEBACKS})")
    trace = (job.job_dir / TRACEBACKS).read_text()
    assert "stage finetune" in trace and "Traceback (most recent call last)" in trace


def test_debug_keeps_the_traceback_in_the_log(
    inputs: tuple[Inputs, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATTUNE_DEBUG", "1")
    job, lines = inputs
    error = raised(ValueError("boom"))
    _log_failure(job, "finetune", "ValueError: boom", error)
    assert "Traceback (most recent call last)" in lines[0]
