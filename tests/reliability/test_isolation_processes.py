"""Isolation over real processes: key files 0600 and no key in any workspace file but them
(logs, database, configs), the old key refused on every route after ``regenerate-keys``, and a
gateway told to listen on all interfaces says so in its log and on the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from chattune.serving.endpoints import EndpointsAPI
from chattune.serving.gateway.app import PUBLIC_PATHS
from chattune.workspace import Workspace
from tests.endpoints import deployed
from tests.reliability.apps import gateway_app, routes

pytestmark = [pytest.mark.slow, pytest.mark.reliability]
NAME = "iso-ep"
SCORE = {
    "input_data": {
        "input_string": [{"role": "user", "content": "Hi"}],
        "parameters": {"max_new_tokens": 4},
    }
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[EndpointsAPI]:
    ws = Workspace.init(tmp_path_factory.mktemp("iso") / "ws")
    with deployed(ws, tiny_model_dir, NAME) as endpoints:
        yield endpoints


def _files_holding(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_keys_live_in_one_0600_file_and_in_no_log(api: EndpointsAPI) -> None:
    keys = api.get_keys(NAME)
    headers = {"Authorization": f"Bearer {keys['primary_key']}"}
    base = api.get(NAME).base_url
    assert httpx.post(f"{base}/score", json=SCORE, headers=headers, timeout=60).status_code == 200
    httpx.post(f"{base}/score", json=SCORE, headers={"Authorization": "Bearer wrong"}, timeout=10)
    keys_file = api.ws.endpoint_dir(NAME) / "keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    for key in (keys["primary_key"], keys["secondary_key"]):
        assert _files_holding(api.ws.root, key) == [keys_file]


def test_old_key_is_refused_on_every_route_after_regenerate(api: EndpointsAPI) -> None:
    old = api.get_keys(NAME)["primary_key"]
    api.regenerate_keys(NAME, "primary")
    new = api.get_keys(NAME)["primary_key"]
    base = api.get(NAME).base_url
    checked = 0
    for method, path in routes(gateway_app(Path("/nonexistent"))):
        if path in PUBLIC_PATHS:
            continue
        answer = httpx.request(
            method, base + path, headers={"Authorization": f"Bearer {old}"}, json=SCORE, timeout=10
        )
        assert answer.status_code == 401, (method, path, answer.text)
        checked += 1
    assert checked >= 5
    good = httpx.post(
        f"{base}/score", json=SCORE, headers={"Authorization": f"Bearer {new}"}, timeout=60
    )
    assert good.status_code == 200
    assert _files_holding(api.ws.root, old) == []  # the old key is gone from disk too


def test_gateway_on_all_interfaces_warns_in_its_log_and_on_the_cli(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    config = yaml.safe_load(ws.config_path.read_text())
    ws.config_path.write_text(yaml.safe_dump({**config, "host": "0.0.0.0"}))
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "chattune",
            "endpoints",
            "create",
            "open-ep",
            "--workspace",
            str(ws.root),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    api = EndpointsAPI(ws, resolve_model=lambda ref: (ref, tmp_path))
    try:
        assert created.returncode == 0, created.stderr
        assert "warning: endpoint open-ep listens on 0.0.0.0 (all interfaces)" in created.stderr
        assert '"host": "0.0.0.0"' in created.stdout  # --json output stays JSON
        assert "listens on 0.0.0.0 (all interfaces)" in api.get_logs("open-ep")
    finally:
        api.delete("open-ep")


def test_a_seed_torch_cannot_take_is_400_and_the_worker_keeps_serving(api: EndpointsAPI) -> None:
    """A seed past 64 bits once reached the worker's batch thread, which died on it: that
    request and every later one hung. Now it is a 400, and the next request is served."""
    key = api.get_keys(NAME)["primary_key"]
    url = f"{api.get(NAME).openai_base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}
    user = [{"role": "user", "content": "Hi"}]
    for seed in (2**64, -(2**63) - 1):
        body = {"messages": user, "max_tokens": 3, "temperature": 0.8, "seed": seed}
        answer = httpx.post(url, json=body, headers=headers, timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
    body = {"messages": user, "max_tokens": 3, "temperature": 0.8, "seed": 2**63 - 1, "n": 2}
    assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 200
