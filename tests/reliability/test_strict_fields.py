"""Typed HTTP fields are strict, 405 says what is allowed, and the public readiness probe
names nothing: the gateway and the worker, in process."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.reliability.apps import KEY, gateway_app, worker_app

USER = [{"role": "user", "content": "Hi"}]
LOOSE = {
    "max_tokens: true": ("/v1/chat/completions", {"messages": USER, "max_tokens": True}),
    "stream: 'yes'": ("/v1/chat/completions", {"messages": USER, "stream": "yes"}),
    "n: '2'": ("/v1/chat/completions", {"messages": USER, "n": "2"}),
    "temperature: '0.5'": ("/v1/chat/completions", {"messages": USER, "temperature": "0.5"}),
    "logprobs: 1": ("/v1/chat/completions", {"messages": USER, "logprobs": 1}),
    "max_new_tokens: 2.0": (
        "/score",
        {"input_data": {"input_string": USER, "parameters": {"max_new_tokens": 2.0}}},
    ),
    "do_sample: 'true'": (
        "/score",
        {"input_data": {"input_string": USER, "parameters": {"do_sample": "true"}}},
    ),
    "content: 5": ("/score", {"input_data": {"input_string": [{"role": "user", "content": 5}]}}),
}


@pytest.fixture(params=["gateway", "worker"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> TestClient:
    if request.param == "gateway":
        headers = {"Authorization": f"Bearer {KEY}"}
        return TestClient(gateway_app(tmp_path), headers=headers, raise_server_exceptions=False)
    return TestClient(worker_app(None), raise_server_exceptions=False)


@pytest.mark.parametrize("case", list(LOOSE))
def test_loosely_typed_fields_are_refused_by_name(app: TestClient, case: str) -> None:
    path, body = LOOSE[case]
    answer = app.post(path, json=body)
    assert answer.status_code in (400, 422), (answer.status_code, answer.text)
    field = case.split(":")[0]
    assert field in answer.json()["error"]["message"], answer.json()


def test_well_typed_numbers_still_pass(app: TestClient) -> None:
    body = {"messages": USER, "max_tokens": 3, "temperature": 1, "top_p": 0.5, "n": 1}
    assert app.post("/v1/chat/completions", json=body).status_code == 200


@pytest.mark.parametrize(("method", "path"), [("GET", "/score"), ("PUT", "/v1/chat/completions")])
def test_405_carries_allow(app: TestClient, method: str, path: str) -> None:
    answer = app.request(method, path)
    assert answer.status_code == 405
    assert answer.headers.get("allow") == "POST"
    assert set(answer.json()) == {"error"}


def test_the_public_readiness_probe_names_no_deployment(tmp_path: Path) -> None:
    client = TestClient(gateway_app(tmp_path))  # no key
    answer = client.get("/health/ready")
    assert answer.status_code == 200 and answer.json() == {"status": "ready"}
    assert "demo" not in answer.text
