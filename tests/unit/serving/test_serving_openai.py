"""The official ``openai`` client against a gateway app over worker apps (fake engines).

What needs a real model (seed determinism, logprobs) is in
``tests/integration/test_endpoint_contracts.py``; this covers the request and answer shapes.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from serving_helpers import ByHost, FakeEngine

from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.keys import KeyStore, write_keys
from chattune.serving.worker.app import create_worker_app
from chattune.serving.worker.engines import Delta, until_stop

KEY = "k" * 43
USER = {"role": "user", "content": "Hi"}


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {
        "blue": FakeEngine("I am blue. Really blue", model_name="phi3-chat:1"),
        "green": FakeEngine("I am green", model_name="phi3-chat:2"),
    }


@pytest.fixture
def http(tmp_path: Path, engines: dict[str, FakeEngine]) -> TestClient:
    write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": "s" * 43})
    apps = {name: create_worker_app(e, name) for name, e in engines.items()}
    table = RoutingTable(
        traffic={"blue": 100},
        instances={n: [f"http://{n}"] for n in engines},
        models={n: e.model_name for n, e in engines.items()},
    )
    app = create_gateway_app(
        "my-ep", KeyStore(tmp_path / "keys.json"), table, httpx.AsyncClient(transport=ByHost(apps))
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(http: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
    )


def test_plain_completion(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="my-ep", messages=[USER], max_tokens=8)
    assert done.choices[0].message.content == "I am blue. Really blue"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.total_tokens == 7 + 5


def test_model_names_a_deployment_or_a_served_model(client: openai.OpenAI) -> None:
    for model in ("green", "phi3-chat:2"):
        done = client.chat.completions.create(model=model, messages=[USER])
        assert done.choices[0].message.content == "I am green"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[USER])
    assert caught.value.status_code == 404
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "green" in caught.value.message


def test_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="blue", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "I am blue. Really blue"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("stop", [". ", [" Really", ". "]])
def test_stop_ends_before_the_stop_text(
    client: openai.OpenAI, engines: dict[str, FakeEngine], stream: bool, stop: str | list[str]
) -> None:
    answer = client.chat.completions.create(model="blue", messages=[USER], stop=stop, stream=stream)
    if stream:
        chunks = [c for c in answer if c.choices]  # type: ignore[union-attr]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        reason = chunks[-1].choices[0].finish_reason
    else:
        text, reason = answer.choices[0].message.content, answer.choices[0].finish_reason  # type: ignore[union-attr]
    assert (text, reason) == ("I am blue", "stop")
    assert engines["blue"].cancelled == 1  # the engine stopped generating


def test_n_two_text_parts_and_developer_role(
    client: openai.OpenAI, engines: dict[str, FakeEngine]
) -> None:
    done = client.chat.completions.create(
        model="blue",
        n=2,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}],
            },
        ],
    )
    assert [c.index for c in done.choices] == [0, 1]
    assert {c.message.content for c in done.choices} == {"I am blue. Really blue"}
    messages, _ = engines["blue"].calls[0]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi\nthere"},
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),  # the fake engine cannot give them
        ({"top_logprobs": 2}, "top_logprobs"),
    ],
)
def test_what_the_engine_cannot_honour_is_a_bad_request_naming_the_field(
    client: openai.OpenAI, extra: dict[str, object], field: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="blue", messages=[USER], **extra)  # type: ignore[call-overload]
    assert caught.value.body["message"].startswith(f"{field}: ")  # type: ignore[index]


def test_image_part_is_refused_with_its_place(client: openai.OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    with pytest.raises(openai.BadRequestError, match=r"messages\[0\]\.content\[0\]\.type"):
        client.chat.completions.create(
            model="blue", messages=[{"role": "user", "content": [image]}]
        )


def test_wrong_key_is_an_authentication_error(http: TestClient) -> None:
    wrong = openai.OpenAI(
        base_url="http://testserver/v1", api_key="nope", http_client=http, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="blue", messages=[USER])


def test_models_retrieve_and_list(client: openai.OpenAI) -> None:
    assert client.models.retrieve("phi3-chat:1").id == "phi3-chat:1"
    assert client.models.retrieve("green").id == "green"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    assert [m.id for m in client.models.list()] == ["phi3-chat:1"]


def test_models_list_names_every_served_model_whatever_the_split(
    tmp_path: Path, engines: dict[str, FakeEngine]
) -> None:
    """Traffic 50/50 used to answer one model per call, drawn by the split; a mirrored
    deployment's model is served too."""
    for traffic, mirror in (({"blue": 50, "green": 50}, {}), ({"blue": 100}, {"green": 10})):
        http = _gateway(tmp_path, engines, traffic, mirror, draws=[0.1, 0.9, 0.1, 0.9])
        client = openai.OpenAI(
            base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
        )
        listed = [[m.id for m in client.models.list()] for _ in range(4)]
        assert listed == [["phi3-chat:1", "phi3-chat:2"]] * 4, (traffic, mirror)


def _gateway(
    tmp_path: Path,
    engines: dict[str, FakeEngine],
    traffic: dict[str, int],
    mirror: dict[str, int],
    draws: list[float],
) -> TestClient:
    write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": "s" * 43})
    apps = {name: create_worker_app(e, name) for name, e in engines.items()}
    table = RoutingTable(
        traffic=traffic,
        mirror=mirror,
        instances={n: [f"http://{n}"] for n in engines},
        models={n: e.model_name for n, e in engines.items()},
    )
    sequence = iter(draws)
    app = create_gateway_app(
        "my-ep",
        KeyStore(tmp_path / "keys.json"),
        table,
        httpx.AsyncClient(transport=ByHost(apps)),
        draw=lambda: next(sequence, 0.5),
    )
    return TestClient(app, raise_server_exceptions=False)


def test_bias_and_penalties_reach_the_engine_and_unknown_fields_are_refused(
    client: openai.OpenAI, engines: dict[str, FakeEngine]
) -> None:
    client.chat.completions.create(
        model="blue",
        messages=[USER],
        logit_bias={"33": -100},
        presence_penalty=0.5,
        frequency_penalty=1.0,
        user="someone",
        extra_body={"repetition_penalty": 1.3},
    )
    _, params = engines["blue"].calls[0]
    assert params.logit_bias == ((33, -100.0),)
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, 1.0)
    assert params.repetition_penalty == 1.3
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="blue", messages=[USER], extra_body={"top_k": 3})
    assert caught.value.body["message"].startswith("top_k: unknown field")  # type: ignore[index]


def test_openapi_and_docs_describe_the_routes_behind_the_key(http: TestClient) -> None:
    assert http.get("/openapi.json").status_code == 401
    assert http.get("/docs").status_code == 401
    auth = {"Authorization": f"Bearer {KEY}"}
    document = http.get("/openapi.json", headers=auth).json()
    assert {"/score", "/v1/chat/completions", "/v1/models", "/v1/models/{model_id}"} <= set(
        document["paths"]
    )
    assert http.get("/docs", headers=auth).status_code == 200
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert answers["200"]["content"]["application/json"]["schema"], (path, method)
            for status, answer in answers.items():
                if status != "200":
                    error = answer["content"]["application/json"]["schema"]
                    assert error == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
            if method == "post" and path != "/.chattune/reconcile":
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body["title"] == {"/score": "ScoreRequest"}.get(
                    path, "ChatCompletionRequest"
                )
    score = document["paths"]["/score"]["post"]
    assert (
        "input_data" in score["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert "413" in score["responses"]
    chat = document["paths"]["/v1/chat/completions"]["post"]
    request = chat["requestBody"]["content"]["application/json"]["schema"]
    assert {"stop", "logit_bias", "presence_penalty", "messages"} <= set(request["properties"])
    assert request["properties"]["messages"]["items"]["properties"]["role"]
    answers = chat["responses"]["200"]["content"]
    assert answers["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert answers["text/event-stream"]["schema"]["title"] == "ChatCompletionChunk"
    assert {"ChatCompletion", "ScoreResponse", "ModelList", "ModelCard", "ErrorBody"} <= set(
        schemas
    )
    models = document["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]
    assert models["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelList"}
    assert document["components"]["securitySchemes"]["endpointKey"]["scheme"] == "bearer"


async def _deltas(*parts: str) -> object:
    for i, part in enumerate(parts):
        yield Delta(part, "length" if i == len(parts) - 1 else None, 3, i + 1)


async def _collect(stream: object) -> list[Delta]:
    return [d async for d in stream]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("parts", "stops", "text", "reason"),
    [
        (("Hel", "lo, wo", "rld"), ("o, w",), "Hell", "stop"),  # a stop split across deltas
        (("ab", "c"), ("x",), "abc", "length"),  # no stop: everything, the engine's reason
        (("STOP", "x"), ("STOP",), "", "stop"),  # a stop at once: nothing
        (("a<", "/s>b"), ("</s>", "<"), "a", "stop"),  # the earliest of several
    ],
)
def test_until_stop(parts: tuple[str, ...], stops: tuple[str, ...], text: str, reason: str) -> None:
    import asyncio

    deltas = asyncio.run(_collect(until_stop(_deltas(*parts), stops)))  # type: ignore[arg-type]
    assert "".join(d.text for d in deltas) == text
    assert deltas[-1].finish_reason == reason
    assert all(d.finish_reason is None for d in deltas[:-1])
