"""Opt-in mirror pairs over real worker apps: 50% mirrored requests become stored pairs
(bounded by the cap), nothing without the opt-in, and the comparison of the two sides."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from serving_helpers import ByHost, FakeEngine

from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.keys import KeyStore, write_keys
from chattune.serving.mirror_compare import set_pairs, summarize
from chattune.serving.pairs import PairRecorder, answer_text, store_writer
from chattune.serving.worker.app import create_worker_app
from chattune.store import open_store
from chattune.store.resources import MirrorPairStore

KEY = "k" * 43
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


def _gateway(tmp_path: Path, db: str) -> TestClient:
    engines = {"blue": FakeEngine("I am blue"), "green": FakeEngine("I am green too")}
    write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": "s" * 43})
    apps = {name: create_worker_app(e, name) for name, e in engines.items()}
    table = RoutingTable(
        traffic={"blue": 100},
        mirror={"green": 50},
        instances={n: [f"http://{n}"] for n in engines},
        statuses={n: "ready" for n in engines},
    )
    app = create_gateway_app(
        "ep",
        KeyStore(tmp_path / "keys.json"),
        table,
        httpx.AsyncClient(transport=ByHost(apps)),
        draw=random.Random(7).random,
        pairs=PairRecorder(tmp_path, store_writer(db, "ep")),
    )
    return TestClient(app, raise_server_exceptions=False)


def _settle(pairs: MirrorPairStore, expected: int) -> int:
    deadline = time.monotonic() + 10
    while pairs.count("ep") < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    return pairs.count("ep")


def test_half_mirrored_requests_are_kept_as_pairs_up_to_the_cap(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    pairs = MirrorPairStore(open_store(db).db)
    client = _gateway(tmp_path, db)
    set_pairs(tmp_path, keep=1000, days=7)
    for i in range(100):
        body = CHAT | {"stream": i % 2 == 0}
        assert client.post("/v1/chat/completions", json=body, headers=AUTH).status_code == 200
    mirrored = len([d for d in _draws(100) if d])
    assert 35 <= mirrored <= 65
    assert _settle(pairs, mirrored) == mirrored
    found = summarize(pairs.list("ep"))
    assert found["live"]["deployments"] == ["blue"] and found["mirror"]["error_rate"] == 0
    assert found["agreement"]["exact"] == 0 and 0 < found["agreement"]["rouge_l"] < 1
    assert found["samples"][-1] == {"live": "I am blue", "mirror": "I am green too"}
    assert found["live"]["latency_s"]["p50"] > 0
    set_pairs(tmp_path, keep=10, days=7)  # the running gateway reads the new cap
    for _ in range(10):
        client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert _settle(pairs, 10) == 10


def test_nothing_is_kept_without_the_opt_in(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    client = _gateway(tmp_path, db)
    for _ in range(20):
        client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    time.sleep(0.3)
    assert MirrorPairStore(open_store(db).db).count("ep") == 0
    set_pairs(tmp_path, keep=5, days=1)
    set_pairs(tmp_path, keep=0, days=1)  # off again
    client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    time.sleep(0.3)
    assert MirrorPairStore(open_store(db).db).count("ep") == 0


def test_answer_text_reads_json_and_sse() -> None:
    body = {"choices": [{"message": {"content": "hello"}}]}
    assert answer_text(json.dumps(body).encode()) == "hello"
    chunks = [{"choices": [{"delta": {"content": c}}]} for c in ("he", "llo")]
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert answer_text(sse.encode()) == "hello"


def _draws(n: int) -> list[bool]:
    """Which of ``n`` requests the gateway's seeded draw mirrors (two draws each)."""
    rng = random.Random(7)
    out = []
    for _ in range(n):
        rng.random()  # live pick
        out.append(rng.random() * 100 < 50)
    return out
