"""Two gateways of one endpoint (as two nodes would run it), one state: the same keys,
traffic and deployments; a change made through one is seen by the other within a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace
from tests.conftest import BOTH_DATABASES

pytestmark = [BOTH_DATABASES, pytest.mark.slow]
SCORE = {
    "input_data": {
        "input_string": [{"role": "user", "content": "Hi"}],
        "parameters": {"max_new_tokens": 4},
    }
}


@pytest.fixture
def api(workspace: Path, tiny_model_dir: Path) -> Iterator[EndpointsAPI]:
    endpoints = EndpointsAPI(Workspace.init(workspace), resolve_model=lambda r: (r, tiny_model_dir))
    yield endpoints
    for info in endpoints.list():
        endpoints.delete(info.name)


def _within(seconds: float, check: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds
        time.sleep(0.05)
    return time.monotonic() - started


def test_two_gateways_share_keys_traffic_and_deployments(api: EndpointsAPI) -> None:
    first = api.create("two-gw")
    api.create_deployment("two-gw", "blue", "tiny:1")
    api.update("two-gw", traffic={"blue": 100})
    second = api.add_node("two-gw", "node-b")
    key = api.get_keys("two-gw")["primary_key"]
    auth = {"Authorization": f"Bearer {key}"}

    def status(base: str, headers: dict[str, str] = auth) -> int:
        return httpx.post(f"{base}/score", json=SCORE, headers=headers, timeout=60).status_code

    _within(60, lambda: status(second) == 200)  # node b's own worker is loaded
    assert status(first.base_url) == 200
    assert status(first.base_url, {}) == status(second, {}) == 401

    # Traffic changed through the SDK (it nudges the endpoint's own gateway): node b follows.
    api.update("two-gw", traffic={"blue": 0})
    assert _within(1.0, lambda: status(second) == 404) < 1.0
    api.update("two-gw", traffic={"blue": 100})
    assert _within(1.0, lambda: status(second) == 200) < 1.0

    # A regenerated key works on both, and the old one on neither.
    new = api.regenerate_keys("two-gw", "primary")["primary_key"]
    assert _within(1.0, lambda: status(second, {"Authorization": f"Bearer {new}"}) == 200) < 1.0
    assert status(second) == status(first.base_url) == 401

    node_pids = [
        p.pid for p in psutil.process_iter(["cmdline"]) if "node-b" in " ".join(p.cmdline())
    ]
    assert node_pids
    api.delete("two-gw")  # node b sees the endpoint go and stops with its workers
    _within(30, lambda: not any(_running(p) for p in node_pids))


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # ours until reaped
    except psutil.NoSuchProcess:
        return False
