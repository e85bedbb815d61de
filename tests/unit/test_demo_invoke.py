"""`chattune demo`'s invoke step on a slow machine: the reference `/score` call is sized to
the measured generation speed, so it answers inside the deployment's request timeout (the
90 s default) instead of a 408. The endpoint is a stand-in with a clock: prompt processing
and each token take chosen seconds (an idle machine, a slow one where the request file's
64 tokens would take 108 s, a slower one); they are illustrations, not measurements."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chattune.cli import demo
from chattune.errors import RuntimeFailure

REQUEST = Path(demo.EXAMPLES / "sample_score.json")


class SlowEndpoint:
    """Answers like the gateway, on a fake clock; 408 past the request timeout."""

    def __init__(self, prefill_s: float, per_token_s: float, timeout_ms: int = 90_000) -> None:
        self.now, self.prefill_s, self.per_token_s = 0.0, prefill_s, per_token_s
        self.timeout_ms = timeout_ms
        self.calls: list[dict[str, Any]] = []

    def clock(self) -> float:
        return self.now

    def get_deployment(self, endpoint: str, name: str) -> Any:
        return SimpleNamespace(settings=SimpleNamespace(request_timeout_ms=self.timeout_ms))

    def invoke(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(body)
        chat = "messages" in body
        tokens = body["max_tokens"] if chat else body["input_data"]["parameters"]["max_new_tokens"]
        took = self.prefill_s + tokens * self.per_token_s
        if took > self.timeout_ms / 1000:
            self.now += self.timeout_ms / 1000
            raise RuntimeFailure(f"endpoint {endpoint} answered 408 request_timeout")
        self.now += took
        if chat:
            return {"usage": {"completion_tokens": tokens}, "choices": []}
        return {"output": "x" * tokens}


def body() -> dict[str, Any]:
    return json.loads(REQUEST.read_text())


@pytest.mark.parametrize(
    ("prefill_s", "per_token_s", "want"),
    [(0.05, 0.03, 64), (6.0, 1.6, 19), (20.0, 4.0, 6)],
    ids=["idle-machine", "slow-machine", "slower-machine"],
)
def test_the_score_call_fits_the_request_timeout(
    monkeypatch: pytest.MonkeyPatch, prefill_s: float, per_token_s: float, want: int
) -> None:
    ep = SlowEndpoint(prefill_s, per_token_s)
    monkeypatch.setattr(demo.time, "monotonic", ep.clock)
    answer = demo.invoke_sized(ep, "chattune-demo", "demo", body())
    score = ep.calls[-1]
    assert "input_data" in score and score["input_data"]["parameters"]["max_new_tokens"] == want
    assert answer["output"] == "x" * want
    last_call = prefill_s + want * per_token_s
    assert last_call <= 90 * demo.TIMEOUT_SHARE  # half the timeout: room for the load to grow


def test_the_unsized_request_file_would_time_out_there() -> None:
    """What the demo sent before: the file's 64 tokens on the slow machine's figures."""
    ep = SlowEndpoint(6.0, 1.6)
    with pytest.raises(RuntimeFailure, match="408"):
        ep.invoke("chattune-demo", body())
