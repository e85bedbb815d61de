"""Helpers of the studio's browser tests: Debian's chromium through Playwright (skipped with
the reason when either is missing), ``chattune studio`` in its own process, a page served on
another local port (the attacker's)."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--no-first-run",
]


def chromium_or_skip() -> str:
    """Debian's chromium and Playwright, or a skip that says how to get them."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed: `make browser`")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed: `make browser`")
    return chromium


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            found.close()


@contextmanager
def studio_process(
    workspace: Path, project: Path, *args: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``chattune studio`` run from ``project``: its printed token URL and the process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "chattune", "studio", "--no-open", "--port", "0", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CHATTUNE_WORKSPACE": str(workspace)},
    )
    url = ""
    assert proc.stdout is not None
    deadline = time.time() + 60
    while not url and time.time() < deadline and proc.poll() is None:
        found = re.search(r"(http://\S+\?token=\S+)", proc.stdout.readline())
        url = found.group(1) if found else ""
    try:
        assert url, "the studio printed no URL"
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def page_server(folder: Path) -> Iterator[str]:
    """Static files of ``folder`` on another local port: ``http://127.0.0.1:PORT``."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
