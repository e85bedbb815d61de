"""Worker routes over a fake engine: answer shapes, limits and the one error shape."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from serving_helpers import FakeEngine

from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.app import create_worker_app

SCORE = {
    "input_data": {
        "input_string": [{"role": "user", "content": "Hi"}],
        "parameters": {"max_new_tokens": 8},
    },
    "params": {},
}
CHAT = {"model": "x", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


def client(engine: FakeEngine, settings: DeploymentSettings | None = None, **kw: int) -> TestClient:
    return TestClient(
        create_worker_app(engine, "demo", settings, **kw), raise_server_exceptions=False
    )


def test_score_returns_output_string_and_names_deployment(fake_engine: FakeEngine) -> None:
    answer = client(fake_engine).post("/score", json=SCORE)
    assert answer.status_code == 200
    assert answer.json() == {"output": "Hello there friend"}
    assert answer.headers["azureml-model-deployment"] == "demo"
    messages, params = fake_engine.calls[0]
    assert messages == [{"role": "user", "content": "Hi"}]
    assert (params.max_new_tokens, params.do_sample) == (8, False)


def test_score_batch_returns_list_in_order() -> None:
    engine = FakeEngine()
    body = {
        "input_data": {
            "input_string": [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
        }
    }
    answer = client(engine).post("/score", json=body)
    assert answer.json() == {"output": ["Hello there friend", "Hello there friend"]}
    assert [c[0][0]["content"] for c in engine.calls] == ["a", "b"]


def test_a_worker_answers_only_requests_carrying_its_gateways_secret() -> None:
    app = TestClient(create_worker_app(FakeEngine(), "demo", secret="s3cret"))
    denied = app.post("/score", json=SCORE)
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    assert (
        app.post("/score", json=SCORE, headers={"x-chattune-worker-secret": "nope"}).status_code
        == 401
    )
    assert app.post(
        "/score", json=SCORE, headers={"x-chattune-worker-secret": "s3cret"}
    ).json() == {"output": "Hello there friend"}
    assert app.get("/health/live").status_code == 200  # probes need no secret


def test_one_conversation_in_a_list_answers_a_string_like_the_reference_notebook() -> None:
    body = {"input_data": {"input_string": [[{"role": "user", "content": "a"}]]}}
    answer = client(FakeEngine()).post("/score", json=body)
    assert answer.json() == {"output": "Hello there friend"}


def test_bad_conversation_is_422_with_index(fake_engine: FakeEngine) -> None:
    body = {
        "input_data": {
            "input_string": [[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]]
        }
    }
    answer = client(fake_engine).post("/score", json=body)
    assert answer.status_code == 422
    assert answer.json() == {
        "error": {
            "code": "invalid_request",
            "message": "input_string[0][1]: two user turns in a row",
        }
    }


def test_chat_completion_has_openai_shape_and_usage(fake_engine: FakeEngine) -> None:
    body = client(fake_engine).post("/v1/chat/completions", json=CHAT).json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "fake:1"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there friend"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_chat_completion_streams_sse(fake_engine: FakeEngine) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    answer = client(fake_engine).post("/v1/chat/completions", json=body)
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in answer.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *answer_chunks, usage = chunks
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in answer_chunks)
    assert text == "Hello there friend"
    assert answer_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 10
    without = client(fake_engine).post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert '"usage"' not in without.text  # usage only when stream_options asks for it


def test_models_lists_the_served_model(fake_engine: FakeEngine) -> None:
    body = client(fake_engine).get("/v1/models").json()
    assert [m["id"] for m in body["data"]] == ["fake:1"]


def test_readiness_follows_the_engine() -> None:
    engine = FakeEngine(ready=False)
    c = client(engine)
    assert c.get("/health/live").status_code == 200
    assert c.get("/health/ready").status_code == 503
    assert c.post("/score", json=SCORE).json()["error"]["code"] == "not_ready"
    engine.ready = True
    assert c.get("/health/ready").json() == {"status": "ready"}


def test_request_timeout_is_408_and_cancels_generation() -> None:
    engine = FakeEngine(delay=5)
    answer = client(engine, DeploymentSettings(request_timeout_ms=100)).post("/score", json=SCORE)
    assert answer.status_code == 408
    assert answer.json()["error"]["code"] == "request_timeout"
    assert "request_timeout_ms=100" in answer.json()["error"]["message"]
    assert engine.cancelled == 1


def test_overload_is_429_after_queue_wait() -> None:
    engine = FakeEngine(delay=0.5)
    app = create_worker_app(
        engine,
        "demo",
        DeploymentSettings(max_concurrent_requests_per_instance=1, max_queue_wait_ms=50),
    )

    async def two_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as c:
            first = asyncio.create_task(c.post("/score", json=SCORE))
            await asyncio.sleep(0.05)
            second = await c.post("/score", json=SCORE)
            return [await first, second]

    first, second = asyncio.run(two_at_once())
    assert first.status_code == 200
    assert second.status_code == 429
    assert "max_concurrent_requests_per_instance=1" in second.json()["error"]["message"]


def test_queued_request_is_served_when_a_slot_frees_in_time() -> None:
    engine = FakeEngine(delay=0.1)
    app = create_worker_app(engine, "demo", DeploymentSettings(max_queue_wait_ms=2000))

    async def two_at_once() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as c:
            answers = await asyncio.gather(
                c.post("/score", json=SCORE), c.post("/score", json=SCORE)
            )
            return [a.status_code for a in answers]

    assert asyncio.run(two_at_once()) == [200, 200]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/score", b"{oops", 400, "invalid_json"),
        ("get", "/nowhere", None, 404, "not_found"),
        ("get", "/score", None, 405, "method_not_allowed"),
        ("post", "/score", b"x" * 2000, 413, "payload_too_large"),
    ],
)
def test_errors_share_one_json_shape(
    fake_engine: FakeEngine, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    c = client(fake_engine, max_body_bytes=1000)
    answer = c.request(method, path, content=body)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert c.post("/score", json=SCORE).status_code == 200  # still serving


def test_streamed_oversized_body_is_413(fake_engine: FakeEngine) -> None:
    def chunks():
        for _ in range(5):
            yield b"x" * 400

    answer = client(fake_engine, max_body_bytes=1000).post("/score", content=chunks())
    assert answer.status_code == 413


def test_engine_bug_is_500_without_traceback() -> None:
    class Broken(FakeEngine):
        async def stream(self, messages, params):  # type: ignore[override]
            raise RuntimeError("secret internals")
            yield

    answer = client(Broken()).post("/score", json=SCORE)
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {"code": "internal_error", "message": "internal error: RuntimeError"}
    }
