"""Gateway routes over real worker apps (fake engines): auth, routing, header, mirror."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serving_helpers import ByHost, FakeEngine

from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.keys import KeyStore, write_keys
from chattune.serving.worker.app import create_worker_app

KEY = "k" * 43
AUTH = {"Authorization": f"Bearer {KEY}"}
SCORE = {"input_data": {"input_string": [{"role": "user", "content": "Hi"}]}}


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {"blue": FakeEngine("I am blue"), "green": FakeEngine("I am green")}


def gateway(
    tmp_path: Path,
    engines: dict[str, FakeEngine],
    traffic: dict[str, int],
    mirror: dict[str, int] | None = None,
    draws: list[float] | None = None,
    ready: tuple[str, ...] = ("blue", "green"),
) -> TestClient:
    write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": "s" * 43})
    apps = {name: create_worker_app(e, name) for name, e in engines.items()}
    table = RoutingTable(
        traffic=traffic,
        mirror=mirror or {},
        instances={n: [f"http://{n}"] if n in ready else [] for n in engines},
        statuses={n: "ready" if n in ready else "creating" for n in engines},
        models={n: e.model_name for n, e in engines.items()},
    )
    sequence = iter(draws or [])
    app = create_gateway_app(
        "my-ep",
        KeyStore(tmp_path / "keys.json"),
        table,
        httpx.AsyncClient(transport=ByHost(apps)),
        draw=lambda: next(sequence, 0.5),
    )
    return TestClient(app, raise_server_exceptions=False)


def test_key_is_required_on_private_routes(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 100})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        answer = c.post("/score", json=SCORE, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        assert "chattune endpoints get-keys my-ep" in answer.json()["error"]["message"]
    assert c.get("/v1/models").status_code == 401
    assert c.post("/.chattune/reconcile").status_code == 401
    assert c.get("/health/live").status_code == 200  # public
    secondary = {"Authorization": "Bearer " + "s" * 43}
    assert c.post("/score", json=SCORE, headers=secondary).status_code == 200


def test_routes_by_traffic_and_names_the_deployment(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 80, "green": 20}, draws=[0.1, 0.0, 0.9, 0.0])
    first = c.post("/score", json=SCORE, headers=AUTH)
    assert first.json() == {"output": "I am blue"}
    assert first.headers["azureml-model-deployment"] == "blue"
    second = c.post("/score", json=SCORE, headers=AUTH)
    assert second.json() == {"output": "I am green"}
    assert second.headers["azureml-model-deployment"] == "green"


def test_deployment_header_overrides_traffic(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 100})
    answer = c.post("/score", json=SCORE, headers={**AUTH, "azureml-model-deployment": "green"})
    assert answer.json() == {"output": "I am green"}
    assert answer.headers["azureml-model-deployment"] == "green"


def test_unknown_deployment_header_is_404(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 100})
    answer = c.post("/score", json=SCORE, headers={**AUTH, "azureml-model-deployment": "pink"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "deployment_not_found"
    assert "'pink' not found on endpoint my-ep (deployments: blue, green)" in answer.text


def test_no_traffic_is_404_with_the_fix(tmp_path: Path, engines: dict) -> None:
    answer = gateway(tmp_path, engines, {}).post("/score", json=SCORE, headers=AUTH)
    assert answer.status_code == 404
    assert "chattune endpoints update my-ep --traffic NAME=100" in answer.json()["error"]["message"]


def test_deployment_without_ready_instance_is_503(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 100}, ready=("blue",))
    answer = c.post("/score", json=SCORE, headers={**AUTH, "azureml-model-deployment": "green"})
    assert answer.status_code == 503
    assert "status creating" in answer.json()["error"]["message"]


def test_worker_errors_pass_through_with_header(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 100})
    bad = {"input_data": {"input_string": [{"role": "assistant", "content": "x"}]}}
    answer = c.post("/score", json=bad, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["error"]["message"].startswith("input_string[0]: the conversation must")
    assert answer.headers["azureml-model-deployment"] == "blue"


def test_openai_routes_and_streaming_pass_through(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"green": 100})
    assert c.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == "fake:1"
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    answer = c.post("/v1/chat/completions", json=body, headers=AUTH)
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.endswith("data: [DONE]\n\n")


def test_mirror_copies_requests_and_drops_the_answer(tmp_path: Path, engines: dict) -> None:
    # draws: live pick (blue), mirror pick 0.05*100=5 < 10 -> green
    c = gateway(tmp_path, engines, {"blue": 100}, mirror={"green": 10}, draws=[0.3, 0.05])
    answer = c.post("/score", json=SCORE, headers=AUTH)
    assert answer.json() == {"output": "I am blue"}
    assert answer.headers["azureml-model-deployment"] == "blue"
    deadline = time.monotonic() + 2
    while not engines["green"].calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(engines["green"].calls) == 1
    # draws 0.5/0.5: mirror point 50 >= 10 -> not mirrored
    c.post("/score", json=SCORE, headers=AUTH)
    time.sleep(0.1)
    assert len(engines["green"].calls) == 1


def test_readiness_is_public_and_reflects_instances(tmp_path: Path, engines: dict) -> None:
    assert gateway(tmp_path, engines, {}, ready=()).get("/health/ready").status_code == 503
    assert gateway(tmp_path, engines, {}).get("/health/ready").status_code == 200


def test_oversized_body_is_413_before_auth(tmp_path: Path, engines: dict) -> None:
    c = gateway(tmp_path, engines, {"blue": 100})
    answer = c.post("/score", content=b"x" * (5 * 1024 * 1024), headers=AUTH)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
