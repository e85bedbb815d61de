"""The endpoint under load and faults, as real processes on tiny-random-phi3 over 127.0.0.1:
a soak (zero errors but designed 429s, latency percentiles, memory growth), a worker killed
mid-load, the gateway killed, slow clients, and clients that hang up mid-stream.

One endpoint serves the module (deployment ``demo``, two instances); tests run in file order.
Run with ``make test-all`` or ``pytest -m '' tests/reliability/test_endpoint_faults.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace
from tests.reliability.figures import record
from tests.reliability.load import run_load

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

NAME = "rel-ep"
CLIENTS = 16
SOAK = int(os.environ.get("CHATTUNE_SOAK_REQUESTS", "5000"))
WARM_UP = 500
USER = [{"role": "user", "content": "Hello!"}]
BODY = {"input_data": {"input_string": USER, "parameters": {"max_new_tokens": 4}}}
LIVENESS_DELAY_S = 300.0  # bounds a (re)started worker's load time: "back within the probes"
PROBES = {
    "readiness_probe": {"period": 1.0, "timeout": 2.0, "failure_threshold": 2},
    "liveness_probe": {"initial_delay": LIVENESS_DELAY_S, "period": 2.0, "failure_threshold": 3},
}
TEST = "test_endpoint_faults.py"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[EndpointsAPI]:
    ws = Workspace.init(tmp_path_factory.mktemp("load") / "ws")
    endpoints = EndpointsAPI(ws, resolve_model=lambda ref: (ref, tiny_model_dir))
    endpoints.create(NAME)
    endpoints.create_deployment(NAME, "demo", "tiny:1", instance_count=2, **PROBES)
    endpoints.update(NAME, traffic={"demo": 100})
    yield endpoints
    for info in endpoints.list():
        endpoints.delete(info.name)


def auth(api: EndpointsAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.get_keys(NAME)['primary_key']}"}


def rss_mb(pids: list[int]) -> dict[int, float]:
    return {p: psutil.Process(p).memory_info().rss / 2**20 for p in pids}


def serving_pids(api: EndpointsAPI) -> list[int]:
    workers = [i["pid"] for i in api.get_deployment(NAME, "demo").instances]
    return [api.get(NAME).pid, *workers]  # type: ignore[list-item]


def wait_ready(api: EndpointsAPI, restarts: int, within: float) -> float:
    """Seconds until every instance is ready with ``restarts`` restarts in all."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        instances = api.get_deployment(NAME, "demo").instances
        if sum(i["restarts"] for i in instances) >= restarts and all(
            i["state"] == "ready" for i in instances
        ):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not ready within {within}s: {api.get_deployment(NAME, 'demo')}")


def test_soak_zero_errors_and_bounded_memory(api: EndpointsAPI) -> None:
    pids = serving_pids(api)
    warm: dict[int, float] = {}

    def sample(n: int) -> None:
        if n == WARM_UP:
            warm.update(rss_mb(pids))

    started = time.monotonic()
    load = asyncio.run(
        run_load(
            api.get(NAME).scoring_uri,  # type: ignore[arg-type]
            BODY,
            auth(api),
            total=SOAK,
            clients=CLIENTS,
            deadline_s=900,
            every=sample,
        )
    )
    seconds = time.monotonic() - started
    end = rss_mb(pids)
    statuses = load.statuses()
    assert len(load.outcomes) == SOAK, statuses  # within the deadline
    assert set(statuses) <= {200, 429}, statuses  # 429: the designed answer to a full worker
    growth = {p: end[p] / warm[p] - 1 for p in pids}
    assert all(g < 0.20 for g in growth.values()), growth
    figures = {
        "requests": len(load.outcomes),
        "clients": CLIENTS,
        "ok": statuses.get(200, 0),
        "designed_429": statuses.get(429, 0),
        "errors": len(load.outcomes) - statuses.get(200, 0) - statuses.get(429, 0),
        "requests_per_s": round(len(load.outcomes) / seconds, 1),
        **{k: round(v, 1) for k, v in load.percentiles().items()},
        "rss_growth_gateway_pc": round(growth[pids[0]] * 100, 1),
        "rss_growth_worker_max_pc": round(max(growth[p] for p in pids[1:]) * 100, 1),
    }
    record("endpoint-soak", f"{TEST}::test_soak_zero_errors_and_bounded_memory", figures)


def test_worker_killed_under_load_fails_only_in_flight_requests(api: EndpointsAPI) -> None:
    victim = api.get_deployment(NAME, "demo").instances[0]["pid"]
    killed_at: list[float] = []

    def kill(n: int) -> None:
        if n == 300 and not killed_at:
            killed_at.append(time.monotonic())
            os.kill(victim, signal.SIGKILL)

    load = asyncio.run(
        run_load(
            api.get(NAME).scoring_uri,  # type: ignore[arg-type]
            BODY,
            auth(api),
            total=1500,
            clients=CLIENTS,
            deadline_s=600,
            timeout_s=30,
            every=kill,
        )
    )
    recovery = wait_ready(api, restarts=1, within=LIVENESS_DELAY_S)
    back_after = time.monotonic() - killed_at[0]
    failed = [o for o in load.outcomes if o.status not in (200, 429)]
    # In flight at the kill: at most one request per client; none may hang (30 s timeout).
    assert len(failed) <= CLIENTS, load.statuses()
    assert all(isinstance(o.status, int) and o.code for o in failed), failed  # JSON errors
    assert max(o.seconds for o in load.outcomes) < 30
    after = [o for o in load.outcomes if o.started > killed_at[0] + 5]
    assert after and all(o.status == 200 for o in after), load.statuses()
    assert back_after < LIVENESS_DELAY_S
    record(
        "worker-kill",
        f"{TEST}::test_worker_killed_under_load_fails_only_in_flight_requests",
        {
            "requests": len(load.outcomes),
            "failed": len(failed),
            "failed_codes": sorted({str(o.code) for o in failed}),
            "worker_back_s": round(back_after, 1),
            "waited_after_load_s": round(recovery, 1),
            "max_latency_s": round(max(o.seconds for o in load.outcomes), 2),
        },
    )


def _slow_client(port: int, key: str, stop: threading.Event) -> None:
    """Sends a request body one byte a second until told to stop (or 100 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (
            f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        sock.sendall(head.encode())
        for _ in range(100):
            if stop.wait(1.0):
                return
            try:
                sock.sendall(b" ")
            except OSError:
                return


def test_slow_clients_do_not_delay_others(api: EndpointsAPI) -> None:
    info = api.get(NAME)
    url, headers = info.scoring_uri, auth(api)

    def measure() -> dict[str, float]:
        load = asyncio.run(
            run_load(url, BODY, headers, total=200, clients=4, deadline_s=120)  # type: ignore[arg-type]
        )
        assert load.statuses() == {200: 200}, load.statuses()
        return load.percentiles()

    alone = measure()
    stop = threading.Event()
    key = headers["Authorization"].split()[1]
    slow = [
        threading.Thread(target=_slow_client, args=(info.port, key, stop), daemon=True)
        for _ in range(8)
    ]
    for thread in slow:
        thread.start()
    time.sleep(1.5)
    try:
        beside = measure()
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=5)
    assert beside["p50_ms"] < 2 * alone["p50_ms"] + 50, (alone, beside)
    record(
        "slow-clients",
        f"{TEST}::test_slow_clients_do_not_delay_others",
        {
            "slow_clients": len(slow),
            "p50_ms_alone": round(alone["p50_ms"], 1),
            "p50_ms_beside": round(beside["p50_ms"], 1),
        },
    )


def test_clients_hanging_up_mid_stream_free_their_batch_slots(api: EndpointsAPI) -> None:
    info, headers = api.get(NAME), auth(api)
    slots = 2 * 16  # two instances, 16 concurrent requests each
    body = {"messages": USER, "max_tokens": 4000, "stream": True}

    async def hang_up_all() -> None:
        async with httpx.AsyncClient(timeout=30) as client:

            async def one() -> None:
                url = f"{info.openai_base_url}/chat/completions"
                async with client.stream("POST", url, json=body, headers=headers) as answer:
                    assert answer.status_code == 200
                    async for _chunk in answer.aiter_raw():
                        return  # hang up after the first chunk, the answer far from done

            await asyncio.gather(*(one() for _ in range(slots)))

    asyncio.run(hang_up_all())
    time.sleep(1.0)
    started = time.monotonic()
    load = asyncio.run(
        run_load(
            info.scoring_uri,
            BODY,
            headers,
            total=slots,
            clients=slots,
            deadline_s=60,  # type: ignore[arg-type]
        )
    )
    assert load.statuses() == {200: slots}, load.statuses()  # a held slot would be a 429
    record(
        "stream-hang-ups",
        f"{TEST}::test_clients_hanging_up_mid_stream_free_their_batch_slots",
        {"hung_up": slots, "then_served": slots, "seconds": round(time.monotonic() - started, 1)},
    )


def test_killed_gateway_comes_back_with_the_same_keys(api: EndpointsAPI) -> None:
    before, headers = api.get(NAME), auth(api)
    os.kill(before.pid, signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 15
    while api.get(NAME).status != "dead":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    started = time.monotonic()
    after = api.start(NAME)  # `chattune endpoints start`
    answer = httpx.post(after.scoring_uri, json=BODY, headers=headers, timeout=60)  # type: ignore[arg-type]
    restored = time.monotonic() - started
    assert answer.status_code == 200, answer.text  # the old key still works
    assert after.port == before.port
    record(
        "gateway-kill",
        f"{TEST}::test_killed_gateway_comes_back_with_the_same_keys",
        {
            "restored_s": round(restored, 1),
            "same_port": after.port == before.port,
            "same_keys": True,
        },
    )
