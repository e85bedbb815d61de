"""A worker instance that died refuses connections; until the supervisor takes it out of
rotation, the gateway must send its requests to the deployment's other instances (they never
reached the dead one), so only the requests in flight inside it fail."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.keys import KeyStore, write_keys
from tests.reliability.apps import KEY, SCORE, SECOND, worker_app


class OneDead(httpx.AsyncBaseTransport):
    """Host ``dead`` refuses connections (a killed worker); ``live`` is a worker app."""

    def __init__(self) -> None:
        self.live = httpx.ASGITransport(app=worker_app(None))
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "dead":
            self.refused += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self.live.handle_async_request(request)


def _gateway(tmp_path: Path, instances: list[str], transport: OneDead) -> TestClient:
    write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": SECOND})
    table = RoutingTable(
        traffic={"demo": 100}, instances={"demo": instances}, statuses={"demo": "ready"}
    )
    app = create_gateway_app(
        "my-ep", KeyStore(tmp_path / "keys.json"), table, httpx.AsyncClient(transport=transport)
    )
    return TestClient(app, headers={"Authorization": f"Bearer {KEY}"})


def test_a_refused_connection_is_retried_on_another_instance(tmp_path: Path) -> None:
    transport = OneDead()
    client = _gateway(tmp_path, ["http://dead", "http://live"], transport)
    answers = [client.post("/score", json=SCORE) for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert transport.refused > 0  # the dead instance was tried, and its requests moved on


def test_when_every_instance_refuses_the_answer_is_503_json(tmp_path: Path) -> None:
    client = _gateway(tmp_path, ["http://dead"], OneDead())
    answer = client.post("/score", json=SCORE)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "deployment_unreachable"
