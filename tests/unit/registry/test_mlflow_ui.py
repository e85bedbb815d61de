"""`mlflow ui` on the workspace shows chattune's registered models, versions and aliases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chattune import Client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # mlflow ui takes ~30-60 s to start on 2 shared cores
def test_mlflow_ui_serves_the_registered_model(workspace: Path, completed_job: str) -> None:
    models = Client(workspace).models
    models.register(job=completed_job, name="tiny-chat")
    models.label("tiny-chat", "1", "prod")
    port = _free_port()
    store = ["--backend-store-uri", models.ws.mlflow_connect_uri]
    where = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", *store, *where],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert ui.poll() is None and time.time() < deadline, ui.stderr and ui.stderr.read()
            time.sleep(0.5)
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        got = httpx.get(
            f"{base}/ajax-api/2.0/mlflow/registered-models/get", params={"name": "tiny-chat"}
        ).json()["registered_model"]
        assert got["name"] == "tiny-chat"
        assert {a["alias"]: a["version"] for a in got["aliases"]} == {"prod": "1"}
        version = httpx.get(
            f"{base}/ajax-api/2.0/mlflow/model-versions/get",
            params={"name": "tiny-chat", "version": "1"},
        ).json()["model_version"]
        tags = {t["key"]: t["value"] for t in version["tags"]}
        assert tags["chattune.version"] == "1" and tags["chattune.job"] == completed_job
    finally:
        ui.terminate()
        ui.wait(timeout=30)
