"""The whole flow through the real CLI on tiny-random-phi3, as a user types it.

data → job (own process) → stream → metrics → register → endpoint → deployment → traffic →
invoke over HTTP with the key (200) and without (401) → delete (port closed, no process left).
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import httpx
import psutil

from tests.e2e.cli import chattune

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _serving_processes(workspace: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "chattune.serving" in cmd and str(workspace) in cmd:
            found.append(p)
    return found


def test_fine_tune_register_serve_invoke_delete(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path, ultrachat_sample_dir: Path
) -> None:
    shutil.copy(EXAMPLES / "job-tiny.yaml", tmp_path / "job.yaml")
    chattune("init")
    chattune(
        "data",
        "download",
        "ultrachat-sample",
        "--split-pc",
        "5",
        "--out",
        "ultrachat_200k_dataset",
        cwd=tmp_path,
    )

    started = time.time()
    created = json.loads(
        chattune("jobs", "create", "-f", "job.yaml", "--name", "e2e", "--json", cwd=tmp_path).stdout
    )
    assert time.time() - started < 30  # returns while the job runs on (measured: ~1.5 s)
    assert created["status"] in ("queued", "running")
    streamed = chattune("jobs", "stream", "e2e", timeout=300)
    assert "job e2e completed" in streamed.stdout
    shown = json.loads(chattune("jobs", "show", "e2e", "--metrics", "--json").stdout)
    assert [s["status"] for s in shown["stages"]] == ["completed"] * 6
    final = shown["metrics"]["final"]
    assert final["test_loss"] > 0 and final["base_test_loss"] > 0
    assert Path(shown["metrics"]["plot"]).stat().st_size > 0

    chattune("models", "register", "--job", "e2e", "--name", "tiny-chat", "--version", "1")
    endpoint = None
    try:
        endpoint = json.loads(chattune("endpoints", "create", "e2e-ep", "--json").stdout)
        chattune("deployments", "create", "demo", "--endpoint", "e2e-ep", "--model", "tiny-chat:1")
        chattune("endpoints", "update", "e2e-ep", "--traffic", "demo=100")
        keys = json.loads(chattune("endpoints", "get-keys", "e2e-ep", "--json").stdout)

        body = json.loads((EXAMPLES / "sample_score.json").read_text())
        body["input_data"]["parameters"]["max_new_tokens"] = 8
        url = endpoint["scoring_uri"]
        ok = httpx.post(
            url, json=body, timeout=60, headers={"Authorization": f"Bearer {keys['primary_key']}"}
        )
        assert ok.status_code == 200, ok.text
        assert isinstance(ok.json()["output"], str)
        assert ok.headers["azureml-model-deployment"] == "demo"
        denied = httpx.post(url, json=body, timeout=60)
        assert denied.status_code == 401
        assert set(denied.json()["error"]) == {"code", "message"}

        invoked = chattune(
            "endpoints", "invoke", "e2e-ep", "--request-file", str(EXAMPLES / "sample_score.json")
        )
        assert invoked.stdout.strip()
    finally:
        chattune("endpoints", "delete", "e2e-ep", check=False)
    port = int(endpoint["scoring_uri"].split(":")[2].split("/")[0])
    assert not _port_open(port)
    assert _serving_processes(workspace) == []
