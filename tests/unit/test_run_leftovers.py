"""The suite's own guard (tests/leftovers.py): a test run that leaves a process running
fails, names it and kills it, with pytest-xdist too; processes of other runs are not its."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chattune.serving import procs

REPO = Path(__file__).resolve().parents[2]
CONFTEST = (
    "from tests.leftovers import pytest_configure, pytest_sessionfinish, "
    "pytest_terminal_summary  # noqa: F401\n"
)
XDIST = ["-p", "xdist.plugin", "-n", "2"]
LEAKY = """
import os, subprocess

def test_leaves_a_process_behind():
    proc = subprocess.Popen(["sleep", "61"])
    open("leaked.pid", "w").write(str(proc.pid))

def test_clean():
    subprocess.run(["true"], check=True)
"""
CLEAN = """
import multiprocessing, subprocess

def test_clean():
    subprocess.run(["sleep", "0.1"], check=True)

def test_multiprocessing_in_the_test_process():  # its helper ends with this process
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(abs, (-1,)) == 1
"""


def _inner_run(tmp_path: Path, tests: str, *flags: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_inner.py").write_text(tests)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # seconds less each, on a busy machine
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("flags", [[], XDIST], ids=["serial", "xdist"])
def test_a_process_left_running_fails_the_run_and_is_killed(
    tmp_path: Path, flags: list[str]
) -> None:
    run = _inner_run(tmp_path, LEAKY, *flags)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "processes left running (killed now)" in run.stdout
    assert "sleep 61" in run.stdout and "2 passed" in run.stdout
    leaked = int((tmp_path / "leaked.pid").read_text())
    assert procs.wait_gone([leaked], timeout=5)


@pytest.mark.parametrize("flags", [[], XDIST], ids=["serial", "xdist"])
def test_a_clean_run_passes_beside_another_runs_processes(tmp_path: Path, flags: list[str]) -> None:
    mine = subprocess.Popen(["sleep", "62"])  # this run's, not the inner run's
    try:
        run = _inner_run(tmp_path, CLEAN, *flags)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "left running" not in run.stdout
        assert mine.poll() is None
    finally:
        mine.kill()
        mine.wait()
