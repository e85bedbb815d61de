"""`chattune studio`: prints its one-time URL, warns when bound beyond this machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chattune.cli.studio import is_loopback


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_the_command_prints_a_token_url_and_warns_on_all_interfaces(
    workspace: Path, tmp_path: Path
) -> None:
    args = ["studio", "--host", "0.0.0.0", "--port", "0", "--no-open"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chattune", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHATTUNE_WORKSPACE": str(workspace)},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        warning = proc.stderr.readline()
        assert warning.startswith("warning: the studio listens on 0.0.0.0")
        url = ""
        deadline = time.time() + 60
        while not url and time.time() < deadline:
            found = re.search(r"http://\S+:(\d+)/\?token=(\S+)", proc.stdout.readline())
            url = found.group(0) if found else ""
        assert found, "no URL printed"
        port, token = found.groups()
        local = f"http://127.0.0.1:{port}"
        assert httpx.get(local + "/api/jobs").status_code == 401
        with httpx.Client() as http:
            answer = http.get(f"{local}/?token={token}", follow_redirects=True)
            assert answer.status_code == 200 and "Jobs" in answer.text
            assert http.get(local + "/api/jobs").json() == []  # the cookie lets it in
    finally:
        proc.terminate()
        proc.wait(timeout=30)
