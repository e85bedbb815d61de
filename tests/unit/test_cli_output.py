"""What the CLI prints survives pipes: long paths and errors stay on one line."""

from __future__ import annotations

import subprocess
import sys

LONG = "/tmp/" + "/".join(["a-rather-long-folder-name"] * 8) + "/report.md"


def test_a_long_path_is_printed_on_one_line_when_piped() -> None:
    code = (
        "from chattune.cli.common import console, err_console\n"
        f"console.print('report: {LONG}')\n"
        f"err_console.print('error: {LONG} is missing; fix: run it again')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={}
    )
    assert proc.stdout.splitlines() == [f"report: {LONG}"]
    assert proc.stderr.splitlines() == [f"error: {LONG} is missing; fix: run it again"]
