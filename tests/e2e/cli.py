"""Run the real `chattune` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def chattune(
    *args: str, cwd: Path | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``chattune ARGS`` with the test's CHATTUNE_WORKSPACE; fails the test on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "chattune", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"chattune {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
