"""Endpoints as real processes: gateway + worker on the tiny model, real HTTP, clean delete."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from chattune.errors import NotFoundError, RuntimeFailure
from chattune.serving import procs
from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

SCORE = {
    "input_data": {
        "input_string": [{"role": "user", "content": "Hello!"}],
        "parameters": {"max_new_tokens": 8},
    },
    "params": {},
}


@pytest.fixture
def api(workspace: Path, tmp_path: Path, tiny_model_dir: Path) -> Iterator[EndpointsAPI]:
    def resolve(ref: str) -> tuple[str, Path]:
        if ref == "tiny:1":
            return ref, tiny_model_dir
        if ref == "broken:1":
            return ref, tmp_path  # not a model folder: the worker cannot load it
        raise NotFoundError(f"model {ref} not found", "register it")

    endpoints = EndpointsAPI(Workspace.init(workspace), resolve_model=resolve)
    yield endpoints
    for info in endpoints.list():  # never leave processes behind, even on failure
        endpoints.delete(info.name)


def serving_processes(ws: Workspace) -> list[psutil.Process]:
    """This workspace's gateways (named in their command line) and workers (whose log files
    lie in it), never those of tests running beside this one."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] == psutil.STATUS_ZOMBIE or "chattune.serving" not in cmdline:
            continue
        if str(ws.root) in cmdline or _writes_under(proc, ws.root):
            found.append(proc)
    return found


def _writes_under(proc: psutil.Process, root: Path) -> bool:
    try:
        return any(Path(f.path).is_relative_to(root) for f in proc.open_files())
    except psutil.Error:  # gone meanwhile
        return False


def test_create_deploy_invoke_delete(api: EndpointsAPI, tmp_path: Path) -> None:
    endpoint = api.create("it-ep")
    assert endpoint.status == "running"
    keys_file = api.ws.endpoint_dir("it-ep") / "keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600

    started = time.monotonic()
    deployment = api.create_deployment("it-ep", "demo", "tiny:1")
    # Ready as soon as the model loads: far below the 600 s liveness initial delay.
    assert deployment.status == "ready" and time.monotonic() - started < 60
    [instance] = deployment.instances
    assert api.get("it-ep").traffic == {}  # new deployments start at 0% (Azure ML)
    with pytest.raises(NotFoundError, match="routes no traffic"):
        api.invoke("it-ep", SCORE)

    api.update("it-ep", traffic={"demo": 100})
    key = api.get_keys("it-ep")["primary_key"]
    answer = httpx.post(
        endpoint.scoring_uri, json=SCORE, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    assert answer.status_code == 200
    assert isinstance(answer.json()["output"], str) and answer.json()["output"]
    assert answer.headers["azureml-model-deployment"] == "demo"

    anonymous = httpx.post(endpoint.scoring_uri, json=SCORE, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    # The worker's own port answers only its gateway (which holds the worker secret).
    around = httpx.post(f"http://127.0.0.1:{instance['port']}/score", json=SCORE, timeout=10)
    assert around.status_code == 401
    with_key = httpx.post(
        f"http://127.0.0.1:{instance['port']}/score",
        json=SCORE,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert with_key.status_code == 401  # the endpoint key is not the worker secret

    body = {
        "messages": SCORE["input_data"]["input_string"],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST",
        endpoint.openai_base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] <= 4

    request_file = tmp_path / "score.json"
    request_file.write_text(json.dumps(SCORE))
    assert isinstance(api.invoke("it-ep", request_file, deployment="demo")["output"], str)
    chat = api.invoke("it-ep", {"messages": SCORE["input_data"]["input_string"], "max_tokens": 4})
    assert chat["usage"]["completion_tokens"] <= 4

    # A worker that dies is restarted by the gateway.
    os.kill(instance["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        [now] = api.get_deployment("it-ep", "demo").instances
        if now["restarts"] == 1 and now["state"] == "ready":
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    assert now["pid"] != instance["pid"]
    assert isinstance(api.invoke("it-ep", SCORE)["output"], str)

    # A regenerated key replaces the old one at once.
    api.regenerate_keys("it-ep", "primary")
    old = httpx.post(
        endpoint.scoring_uri, json=SCORE, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert old.status_code == 401

    pids = [endpoint.pid, now["pid"]]
    assert {p.pid for p in serving_processes(api.ws)} >= set(pids)  # the scan sees them
    api.delete("it-ep")
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    )
    assert serving_processes(api.ws) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{endpoint.host}:{endpoint.port}/health/live", timeout=2)
    with pytest.raises(NotFoundError):
        api.get("it-ep")
    assert not api.ws.endpoint_dir("it-ep").exists()


def test_model_that_cannot_load_fails_the_deployment(api: EndpointsAPI) -> None:
    api.create("it-broken")
    with pytest.raises(RuntimeFailure, match="worker exited with code 3 before it was ready"):
        api.create_deployment("it-broken", "bad", "broken:1", timeout=60)
    info = api.get_deployment("it-broken", "bad")
    assert info.status == "failed" and info.instances == []
    assert "could not be loaded" in api.get_logs("it-broken", "bad")
    api.delete_deployment("it-broken", "bad")
    assert api.list_deployments("it-broken") == []


def test_dead_gateway_shows_dead_and_its_workers_follow(api: EndpointsAPI) -> None:
    info = api.create("it-dead")
    [worker] = api.create_deployment("it-dead", "demo", "tiny:1", wait=False).instances
    os.kill(info.pid, signal.SIGKILL)  # the worker may still be importing: it follows anyway
    assert procs.wait_gone([worker["pid"]], timeout=30), "orphaned worker did not exit"
    deadline = time.monotonic() + 10
    while api.get("it-dead").status != "dead":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "not running" in (api.get("it-dead").error or "")
    api.delete("it-dead")
    assert api.list() == []


def test_start_all_brings_back_every_dead_gateway_and_leaves_running_ones(
    api: EndpointsAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chattune endpoints start --all` (the boot/login unit): same ports, same keys."""
    from tests.e2e.cli import chattune

    dead = {name: api.create(name) for name in ("boot-a", "boot-b")}
    alive = api.create("boot-c")
    keys = {name: api.get_keys(name) for name in dead}
    for info in dead.values():
        os.kill(info.pid, signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while {api.get(n).status for n in dead} != {"dead"}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    monkeypatch.setenv("CHATTUNE_WORKSPACE", str(api.ws.root))
    out = chattune("endpoints", "start", "--all").stdout
    assert "boot-a: running" in out and "boot-b: running" in out and "boot-c" not in out
    for name, before in dead.items():
        after = api.get(name)
        assert (after.status, after.port) == ("running", before.port)
        assert api.get_keys(name) == keys[name]
    assert api.get("boot-c").pid == alive.pid  # a running gateway is left alone
    assert "nothing to start" in chattune("endpoints", "start", "--all").stdout
    assert "one endpoint name, or --all" in chattune("endpoints", "start", check=False).stderr
