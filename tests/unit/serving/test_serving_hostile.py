"""Hostile bodies get their 4xx in the one JSON shape, and the server serves the next request.

Each runs against the worker app and through the gateway app (whose key middleware once
turned a streamed oversized body into an ExceptionGroup and a 500).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serving_helpers import FakeEngine

from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.http import DEFAULT_MAX_BODY_BYTES
from chattune.serving.keys import KeyStore, write_keys
from chattune.serving.protocol import MAX_JSON_DEPTH, json_depth
from chattune.serving.worker.app import create_worker_app

KEY = "k" * 43
AUTH = {"Authorization": f"Bearer {KEY}"}
SCORE = {"input_data": {"input_string": [{"role": "user", "content": "Hi"}]}}
LIMIT = 1000


Make = Callable[[int], TestClient]


@pytest.fixture(params=["worker", "gateway"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    """Builds the worker app alone, or a gateway app in front of it, with a body limit."""

    def build(limit: int) -> TestClient:
        worker = create_worker_app(FakeEngine(), "demo", max_body_bytes=limit)
        if request.param == "worker":
            return TestClient(worker, raise_server_exceptions=False)
        write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": "s" * 43})
        table = RoutingTable(traffic={"demo": 100}, instances={"demo": ["http://demo"]})
        gateway = create_gateway_app(
            "my-ep",
            KeyStore(tmp_path / "keys.json"),
            table,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=worker)),
            max_body_bytes=limit,
        )
        return TestClient(gateway, headers=AUTH, raise_server_exceptions=False)

    return build


@pytest.fixture
def app(make: Make) -> TestClient:
    return make(LIMIT)


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"]


def assert_still_serving(app: TestClient) -> None:
    answer = app.post("/score", json=SCORE)
    assert answer.status_code == 200 and answer.json() == {"output": "Hello there friend"}


def test_chunked_oversized_body_without_content_length_is_413(app: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * 400

    answer = app.post("/score", content=chunks())
    assert "content-length" not in answer.request.headers
    assert_error(answer, 413, "payload_too_large")
    assert "1000 byte limit" in answer.json()["error"]["message"]
    assert_still_serving(app)


@pytest.mark.parametrize("path", ["/score", "/v1/chat/completions"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_400(make: Make, path: str, depth: int) -> None:
    app = make(DEFAULT_MAX_BODY_BYTES)
    body = b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
    answer = app.post(path, content=body, headers={"content-type": "application/json"})
    assert_error(answer, 400, "invalid_json")
    assert f"deeper than {MAX_JSON_DEPTH} levels" in answer.json()["error"]["message"]
    assert_still_serving(app)


def test_json_depth_counts_without_recursion() -> None:
    assert json_depth(1) == 0
    assert json_depth({"a": [1, {"b": []}]}) == 4
    deep: list[object] = []
    for _ in range(200_000):  # far past Python's recursion limit
        deep = [deep]
    assert json_depth(deep, MAX_JSON_DEPTH) == MAX_JSON_DEPTH + 1  # counting stops past the limit


def test_near_zero_temperature_decodes_greedily() -> None:
    engine = FakeEngine()
    app = TestClient(create_worker_app(engine, "demo"))
    body = {
        "input_data": {
            "input_string": [{"role": "user", "content": "Hi"}],
            "parameters": {"do_sample": True, "temperature": 1e-45},
        }
    }
    assert app.post("/score", json=body).status_code == 200
    chat = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 1e-45}
    assert app.post("/v1/chat/completions", json=chat).status_code == 200
    assert [p.do_sample for _, p in engine.calls] == [False, False]


def test_body_that_is_not_an_object_is_400(app: TestClient) -> None:
    assert_error(app.post("/score", content=json.dumps([1, 2]).encode()), 400, "invalid_json")
    assert_still_serving(app)
