"""Auth and isolation, fast (in-process apps): every route but health refuses a request without
the endpoint key (gateway) or the worker secret (worker), however the key is offered."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chattune.serving.gateway.app import PUBLIC_PATHS
from chattune.serving.keys import write_keys
from tests.reliability.apps import KEY, SCORE, SECOND, SECRET, gateway_app, routes, worker_app

# Every way a client might wrongly offer (or not offer) the key: none is accepted.
WRONG = {
    "no key": ({}, ""),
    "wrong key": ({"Authorization": "Bearer " + "x" * 43}, ""),
    "key without Bearer": ({"Authorization": KEY}, ""),
    "Basic scheme": ({"Authorization": "Basic " + KEY}, ""),
    "api-key header": ({"api-key": KEY}, ""),
    "empty Bearer": ({"Authorization": "Bearer "}, ""),
    "key prefix": ({"Authorization": "Bearer " + KEY[:-1]}, ""),
    "key in query ?key": ({}, f"?key={KEY}"),
    "key in query ?api_key": ({}, f"?api_key={KEY}"),
    "key in query ?code": ({}, f"?code={KEY}"),
    "key in query ?access_token": ({}, f"?access_token={KEY}"),
}


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]):
    body = {"json": SCORE} if method == "POST" else {}
    return client.request(method, path, headers=headers, **body)


def test_gateway_serves_the_expected_routes() -> None:
    """The matrix below iterates the app's own routes: make sure it sees the private ones."""
    found = {path for _, path in routes(gateway_app(Path("/nonexistent")))}
    assert {"/score", "/v1/chat/completions", "/v1/models", "/openapi.json", "/docs"} <= found


@pytest.mark.parametrize("how", list(WRONG))
def test_every_gateway_route_but_health_is_401_without_the_key(tmp_path: Path, how: str) -> None:
    client = TestClient(gateway_app(tmp_path), raise_server_exceptions=False)
    headers, query = WRONG[how]
    for method, path in routes(client.app):  # type: ignore[arg-type]
        answer = _call(client, method, path + query, headers)
        if path in PUBLIC_PATHS:
            assert answer.status_code == 200, (method, path, answer.text)
            continue
        assert answer.status_code == 401, (how, method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
        assert KEY not in answer.text
    good = client.post("/score", json=SCORE, headers={"Authorization": f"Bearer {KEY}"})
    assert good.status_code == 200  # the same app serves a right key


def test_old_key_is_401_on_every_route_after_regenerate(tmp_path: Path) -> None:
    client = TestClient(gateway_app(tmp_path), raise_server_exceptions=False)
    old = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/score", json=SCORE, headers=old).status_code == 200
    new = "n" * 43
    write_keys(tmp_path / "keys.json", {"primary": new, "secondary": SECOND})  # regenerate
    for method, path in routes(client.app):  # type: ignore[arg-type]
        if path not in PUBLIC_PATHS:
            assert _call(client, method, path, old).status_code == 401, (method, path)
    assert (
        client.post("/score", json=SCORE, headers={"Authorization": f"Bearer {new}"}).status_code
        == 200
    )


def test_missing_keys_file_lets_nobody_in(tmp_path: Path) -> None:
    client = TestClient(gateway_app(tmp_path), raise_server_exceptions=False)
    (tmp_path / "keys.json").unlink()
    answer = client.post("/score", json=SCORE, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {KEY}"},  # the endpoint key is not the worker secret
        {"x-chattune-worker-secret": SECRET[:-1]},
        {"x-chattune-worker-secret": ""},
    ],
    ids=["nothing", "endpoint key", "secret prefix", "empty secret"],
)
def test_every_worker_route_but_health_is_401_without_its_secret(headers: dict) -> None:
    client = TestClient(worker_app(), raise_server_exceptions=False)
    seen = set()
    for method, path in routes(client.app):  # type: ignore[arg-type]
        seen.add(path)
        answer = _call(client, method, path, headers)
        if path.startswith("/health/"):
            assert answer.status_code == 200, (path, answer.text)
        else:
            assert answer.status_code == 401, (method, path, answer.text)
    assert {"/score", "/v1/chat/completions"} <= seen
    right = client.post("/score", json=SCORE, headers={"x-chattune-worker-secret": SECRET})
    assert right.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_a_gateway_beyond_loopback_is_warned_about(host: str) -> None:
    from chattune.serving.procs import exposure_warning

    warning = exposure_warning(host, "my-ep")
    assert warning and f"listens on {host}" in warning and "host: 127.0.0.1" in warning
    assert "\n" not in warning


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_gateway_is_not_warned_about(host: str) -> None:
    from chattune.serving.procs import exposure_warning

    assert exposure_warning(host, "my-ep") is None
