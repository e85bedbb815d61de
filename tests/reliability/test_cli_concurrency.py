"""Ten CLI processes writing to one new workspace at once leave a consistent database: each
write is there once, the SQLite file passes its integrity check, and every process exits 0."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chattune import Client

pytestmark = [pytest.mark.slow, pytest.mark.reliability]  # ~12 s of CLI start-ups
WRITERS = 10


def test_ten_cli_processes_writing_at_once(workspace: Path) -> None:
    env = dict(os.environ, CHATTUNE_WORKSPACE=str(workspace))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "chattune", "compute", "create", f"w{i}", "--type", "local"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for i in range(WRITERS)  # the first open of the workspace races too
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    failed = [(code, err) for code, _out, err in results if code != 0]
    assert not failed, failed
    names = sorted(t.name for t in Client(workspace).compute.list())
    assert names == sorted(["local", *(f"w{i}" for i in range(WRITERS))])
    database = next(workspace.glob("*.db"))
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
