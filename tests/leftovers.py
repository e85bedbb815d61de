"""The test run ends clean: no process it started outlives it.

Every process a run starts inherits :data:`ENV` (a token fresh for each run, set before
the first test and, under pytest-xdist, before the workers start: they and all they start
inherit it). When the run ends (in the controller, after the xdist workers are gone), any
process still carrying the token is a leftover: it gets :data:`GRACE_S` seconds to go on its
own (a worker whose gateway was just killed takes up to ~3 s), then it is killed and the run
fails, naming it. Processes of other runs (other tokens) are never looked at twice.

``tests/conftest.py`` imports the two hooks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Generator

import psutil
import pytest

ENV = "CHATTUNE_TEST_RUN"
GRACE_S = 5.0
_report: list[str] = []


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Mark this run (the controller's token; xdist workers keep the one they inherit)."""
    if _controller(config):
        os.environ[ENV] = f"{os.getpid()}-{secrets.token_hex(8)}"


MULTIPROCESSING_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
"""Helpers ``multiprocessing`` starts for this process, which end when it ends (EOF)."""


def leftovers(token: str) -> list[psutil.Process]:
    """Live processes started by the run ``token`` names (this process and its own
    ``multiprocessing`` helpers aside)."""
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "status", "cmdline"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["ppid"] == os.getpid() and any(h in cmdline for h in MULTIPROCESSING_HELPERS):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(ENV) == token:
                found.append(proc)
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} (parent {proc.ppid()}): {' '.join(proc.cmdline())[:300]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def clean_up(token: str, grace: float = GRACE_S) -> list[str]:
    """Wait up to ``grace`` seconds for the run's processes to go, kill those that do not;
    what was killed, described."""
    deadline = time.monotonic() + grace
    while (left := leftovers(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    named = [describe(proc) for proc in left]
    for proc in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)
    return named


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """After every other finish step (xdist's workers are stopped by then): fail the run
    for each process it left running, and kill it."""
    result = yield
    token = os.environ.get(ENV)
    if _controller(session.config) and token:
        _report[:] = clean_up(token)
        if _report:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _report:
        return
    terminalreporter.section("processes left running (killed now)", red=True, bold=True)
    for line in _report:
        terminalreporter.write_line(line)
    terminalreporter.write_line(
        f"{len(_report)} process(es) outlived the test run: whatever started them must stop "
        "them (see docs/processes.md)",
        red=True,
    )
