"""Hostile bodies against the gateway (and the worker behind it), in process: each gets a 4xx
in the one JSON shape, and the next request is served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.reliability.apps import KEY, SCORE, gateway_app, worker_app

AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"content-type": "application/json"}
USER = [{"role": "user", "content": "Hi"}]
LIMIT = 4096


@pytest.fixture(params=["gateway", "worker"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> TestClient:
    if request.param == "gateway":
        built = gateway_app(tmp_path, max_body_bytes=LIMIT)
        return TestClient(built, headers=AUTH, raise_server_exceptions=False)
    return TestClient(worker_app(None, LIMIT), raise_server_exceptions=False)


def assert_refused(answer, statuses: tuple[int, ...] = (400, 413, 422)) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"] and "\n" not in body["error"]["message"]


def assert_still_serving(app: TestClient) -> None:
    answer = app.post("/score", json=SCORE)
    assert answer.status_code == 200 and answer.json() == {"output": "Hello there friend"}


RAW = {
    "latin-1 bytes": b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',
    "lone continuation byte": b'{"messages": [{"role": "user", "content": "\x80"}]}',
    "UTF-16 body": json.dumps({"messages": USER}).encode("utf-16"),
    "NUL bytes": b"\x00" * 64,
    "truncated JSON": b'{"messages": [{"role": "user", "content": "Hi"',
    "bare NaN": b"NaN",
    "lone surrogate escape": b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
    "huge integer": b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1'
    + b"0" * 5000
    + b"}",
}


@pytest.mark.parametrize("path", ["/score", "/v1/chat/completions"])
@pytest.mark.parametrize("name", list(RAW))
def test_undecodable_or_broken_bodies_are_4xx(app: TestClient, path: str, name: str) -> None:
    answer = app.post(path, content=RAW[name], headers=JSON)
    if name == "lone surrogate escape" and answer.status_code == 200:
        pass  # valid JSON text; what the engine gets is its business (no crash)
    else:
        assert_refused(answer)
    assert_still_serving(app)


SAMPLING = {
    "temperature NaN": {"temperature": float("nan")},
    "temperature inf": {"temperature": float("inf")},
    "temperature -inf": {"temperature": float("-inf")},
    "temperature 1e308": {"temperature": 1e308},
    "temperature negative": {"temperature": -1},
    "top_p NaN": {"top_p": float("nan")},
    "top_p 2": {"top_p": 2},
    "top_p 0": {"top_p": 0},
    "max_tokens 2**63": {"max_tokens": 2**63},
    "max_tokens negative": {"max_tokens": -5},
    "max_tokens float": {"max_tokens": 1.5},
    "n 10**9": {"n": 10**9},
    "seed 2**80": {"seed": 2**80},
    "top_logprobs 10**6": {"logprobs": True, "top_logprobs": 10**6},
    "stop 10**4 strings": {"stop": ["x"] * 10_000},
    "seed 2**64-1 with n 2": {"seed": 2**64 - 1, "n": 2},
}


@pytest.mark.parametrize("name", list(SAMPLING))
def test_nan_and_extreme_sampling_values_are_4xx(app: TestClient, name: str) -> None:
    body = json.dumps({"messages": USER, **SAMPLING[name]}).encode()  # NaN, Infinity literals
    if len(body) > LIMIT:
        assert_refused(app.post("/v1/chat/completions", content=body, headers=JSON))
        return
    assert_refused(app.post("/v1/chat/completions", content=body, headers=JSON))
    assert_still_serving(app)


SCORE_PARAMS = {
    "temperature NaN": {"temperature": float("nan"), "do_sample": True},
    "temperature inf": {"temperature": float("inf"), "do_sample": True},
    "top_p NaN": {"top_p": float("nan"), "do_sample": True},
    "max_new_tokens 2**63": {"max_new_tokens": 2**63},
    "max_new_tokens 0": {"max_new_tokens": -1},
}


@pytest.mark.parametrize("name", list(SCORE_PARAMS))
def test_nan_and_extreme_score_parameters_are_4xx(app: TestClient, name: str) -> None:
    body = {"input_data": {"input_string": USER, "parameters": SCORE_PARAMS[name]}}
    assert_refused(app.post("/score", content=json.dumps(body).encode(), headers=JSON))
    assert_still_serving(app)


def test_oversized_body_with_content_length_is_413(app: TestClient) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "x" * LIMIT}]}).encode()
    answer = app.post("/v1/chat/completions", content=body, headers=JSON)
    assert "content-length" in answer.request.headers
    assert_refused(answer, (413,))
    assert_still_serving(app)


def test_oversized_body_without_content_length_is_413(app: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(LIMIT // 512 + 2):
            yield b"x" * 512
        yield b'"}]}'

    answer = app.post("/v1/chat/completions", content=chunks(), headers=JSON)
    assert "content-length" not in answer.request.headers
    assert_refused(answer, (413,))
    assert_still_serving(app)


def test_a_lying_content_length_is_refused(app: TestClient) -> None:
    body = json.dumps({"messages": USER}).encode()
    answer = app.post("/score", content=body, headers={**JSON, "content-length": str(LIMIT * 10)})
    assert answer.status_code in (400, 413, 422), answer.text
    assert_still_serving(app)
