"""The endpoint contracts over real processes (tiny-random-phi3), as a user and an attacker
would try them: workers closed to direct calls, /score shapes, the official OpenAI client,
hostile bodies, a stream whose worker dies, a gateway killed and started again.

One endpoint serves the whole module (its gateway listens on ``0.0.0.0``, as
``host: 0.0.0.0`` in the workspace config asks); tests run in file order and the last ones
kill its worker, then its gateway.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest
import yaml

from chattune.errors import ConflictError
from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace
from tests.endpoints import deployed

NAME = "it-contracts"
USER = {"role": "user", "content": "Hello!"}


def score(conversations: object, max_new_tokens: int = 6) -> dict[str, object]:
    return {
        "input_data": {
            "input_string": conversations,
            "parameters": {"max_new_tokens": max_new_tokens},
        }
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[EndpointsAPI]:
    ws = Workspace.init(tmp_path_factory.mktemp("contracts") / "ws")
    config = yaml.safe_load(ws.config_path.read_text())
    ws.config_path.write_text(yaml.safe_dump({**config, "host": "0.0.0.0"}))
    with deployed(ws, tiny_model_dir, NAME) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def key(api: EndpointsAPI) -> str:
    return api.get_keys(NAME)["primary_key"]


@pytest.fixture(scope="module")
def client(api: EndpointsAPI, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.get(NAME).openai_base_url, api_key=key, max_retries=0)


def post(api: EndpointsAPI, key: str, path: str, **kwargs: object) -> httpx.Response:
    url = f"{api.get(NAME).base_url}{path}"
    return httpx.post(url, headers={"Authorization": f"Bearer {key}"}, timeout=60, **kwargs)  # type: ignore[arg-type]


def test_workers_listen_on_loopback_only_and_refuse_direct_calls(api: EndpointsAPI) -> None:
    assert api.get(NAME).host == "0.0.0.0"  # the gateway listens everywhere, as configured
    [instance] = api.get_deployment(NAME, "demo").instances
    listening = [
        c.laddr
        for c in psutil.Process(instance["pid"]).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    direct = httpx.post(f"http://127.0.0.1:{instance['port']}/score", json=score([USER]))
    assert direct.status_code == 401


def test_score_answers_one_string_per_conversation(api: EndpointsAPI, key: str) -> None:
    for shape in ([USER], [[USER]]):  # the reference sample_score.json sends [[msgs]]
        answer = post(api, key, "/score", json=score(shape))
        assert answer.status_code == 200 and isinstance(answer.json()["output"], str)
    two = post(
        api,
        key,
        "/score",
        json=score([[USER], [USER, {"role": "assistant", "content": "Hi"}, USER]]),
    )
    output = two.json()["output"]
    assert isinstance(output, list) and len(output) == 2 and all(isinstance(o, str) for o in output)


def test_a_conversation_ending_with_an_assistant_turn_is_continued(
    api: EndpointsAPI, key: str, client: openai.OpenAI
) -> None:
    """The reference notebook's request (a test_gen conversation ends with the assistant's
    answer) is served: that message is continued, or a new turn starts when asked."""
    conversation = [USER, {"role": "assistant", "content": "Hi! How can"}]
    answer = post(api, key, "/score", json=score([conversation]))
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["output"], str)
    asked = score([conversation])
    asked["input_data"]["parameters"]["add_generation_prompt"] = True  # type: ignore[index]
    assert post(api, key, "/score", json=asked).status_code == 200
    kwargs = dict(model=NAME, messages=conversation, max_tokens=3, temperature=0)
    continued = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    new_turn = client.chat.completions.create(**kwargs, extra_body={"add_generation_prompt": True})  # type: ignore[call-overload]
    # Continuing leaves the turn open: the prompt lacks the end-of-turn a new turn adds.
    assert continued.usage.prompt_tokens < new_turn.usage.prompt_tokens
    wrong = post(
        api,
        key,
        "/score",
        json={**score([USER])}
        | {"input_data": {"input_string": [USER], "parameters": {"continue_final_message": True}}},
    )
    assert wrong.status_code == 422 and "continue_final_message" in wrong.text


def test_openai_client_plain_stream_and_n(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model=NAME, messages=[USER], max_tokens=5, temperature=0)
    assert done.usage is not None and 0 < done.usage.completion_tokens <= 5
    assert done.choices[0].finish_reason in ("stop", "length")
    chunks = list(
        client.chat.completions.create(
            model="demo",
            messages=[USER],
            max_tokens=5,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == done.choices[0].message.content  # both greedy
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 5
    two = client.chat.completions.create(model="tiny:1", messages=[USER], max_tokens=4, n=2)
    assert [c.index for c in two.choices] == [0, 1]


def test_openai_stop_seed_and_logprobs(client: openai.OpenAI) -> None:
    greedy = dict(model=NAME, messages=[USER], max_tokens=24, temperature=0)
    text = client.chat.completions.create(**greedy).choices[0].message.content or ""  # type: ignore[call-overload]
    assert len(text) > 8, text
    stop = text[4:7]
    cut = client.chat.completions.create(**greedy, stop=[stop, "\u2603"])  # type: ignore[call-overload]
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"

    sampled = dict(model=NAME, messages=[USER], max_tokens=16, temperature=1.0, seed=7)
    first = client.chat.completions.create(**sampled).choices[0].message.content  # type: ignore[call-overload]
    again = client.chat.completions.create(**sampled).choices[0].message.content  # type: ignore[call-overload]
    assert first == again
    other = [
        client.chat.completions.create(**{**sampled, "seed": s}).choices[0].message.content  # type: ignore[call-overload]
        for s in (8, 9, 10)
    ]
    assert any(o != first for o in other)  # the seed drives the sampling

    with_lp = client.chat.completions.create(**greedy, logprobs=True, top_logprobs=2)  # type: ignore[call-overload]
    content = with_lp.choices[0].logprobs.content
    assert len(content) == with_lp.usage.completion_tokens
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 2
        assert token.top_logprobs[0].logprob >= token.logprob - 1e-4  # greedy took the top


def test_openai_client_errors(api: EndpointsAPI, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[USER])
    with pytest.raises(openai.BadRequestError, match="tools"):
        client.chat.completions.create(
            model=NAME,
            messages=[USER],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    wrong = openai.OpenAI(base_url=api.get(NAME).openai_base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    assert client.models.retrieve("tiny:1").id == "tiny:1"
    developer = client.chat.completions.create(
        model=NAME,
        max_tokens=3,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ],
    )
    assert developer.choices[0].message.content is not None


def test_openai_bias_penalties_and_unknown_fields(
    client: openai.OpenAI, tiny_model_dir: Path
) -> None:
    """Issue 26: logit_bias {"33": -100} at temperature 0 still answered "1...", penalties had
    no effect, and unknown fields were ignored."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    greedy = dict(model=NAME, messages=[USER], temperature=0, max_tokens=4)
    plain = client.chat.completions.create(**greedy, logprobs=True)  # type: ignore[call-overload]
    first = plain.choices[0].logprobs.content[0].token
    same = [i for i in range(len(tokenizer)) if tokenizer.decode([i]) == first][:300]
    banned = client.chat.completions.create(
        **greedy, logprobs=True, logit_bias={str(i): -100 for i in same}
    )  # type: ignore[call-overload]
    assert banned.choices[0].logprobs.content[0].token != first

    # A +2 bias makes " hello" repeat (the tiny model's logits span about 1); penalties stop it.
    word = tokenizer(" hello", add_special_tokens=False)["input_ids"][-1]
    text = tokenizer.decode([word]).strip()
    repeat = dict(
        model=NAME, messages=[USER], temperature=0, max_tokens=12, logit_bias={str(word): 2}
    )

    def count(**extra: object) -> int:
        done = client.chat.completions.create(**repeat, **extra)  # type: ignore[call-overload]
        return (done.choices[0].message.content or "").count(text)

    assert count() == 12
    assert count(frequency_penalty=1.0) < 6
    assert count(presence_penalty=2.0) <= 2
    assert count(extra_body={"repetition_penalty": 10.0}) <= 2

    with pytest.raises(openai.BadRequestError, match="top_k: unknown field"):
        client.chat.completions.create(model=NAME, messages=[USER], extra_body={"top_k": 3})
    with pytest.raises(openai.BadRequestError, match=r"reasoning_effort: not supported"):
        client.chat.completions.create(model=NAME, messages=[USER], reasoning_effort="low")
    done = client.chat.completions.create(model=NAME, messages=[USER], max_tokens=2, user="me")
    assert done.choices[0].message.content is not None  # a label is accepted


@pytest.mark.slow  # starts a second deployment
def test_models_list_names_every_served_model_on_every_call(
    api: EndpointsAPI, client: openai.OpenAI
) -> None:
    api.create_deployment(NAME, "shadow", "tiny:2")
    try:
        assert [m.id for m in client.models.list()] == ["tiny:1"]  # no traffic: not served
        api.update(NAME, mirror_traffic={"shadow": 10})
        for _ in range(5):
            assert [m.id for m in client.models.list()] == ["tiny:1", "tiny:2"]
    finally:
        api.update(NAME, mirror_traffic={})
        api.delete_deployment(NAME, "shadow")


@pytest.mark.slow  # two rolls: three worker starts under load
def test_deployments_update_rolls_without_failing_a_request(api: EndpointsAPI, key: str) -> None:
    """Requests (plain and streamed) run throughout two rolling updates; none fails."""
    import threading

    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def load(stream: bool) -> None:
        body = {"messages": [USER], "max_tokens": 24, "stream": stream}
        url = f"{api.get(NAME).openai_base_url}/chat/completions"
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            while not stop.is_set():
                try:
                    answer = http.post(url, json=body)
                    ok = (
                        answer.status_code == 200
                        and (not stream or answer.text.rstrip().endswith("data: [DONE]"))
                        and '"error"' not in answer.text
                    )
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if ok:
                    served[0] += 1
                else:
                    failures.append(f"{answer.status_code}: {answer.text[-300:]}")

    threads = [threading.Thread(target=load, args=(i % 2 == 1,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        before = api.get_deployment(NAME, "demo")
        two = api.update_deployment(
            NAME,
            "demo",
            instance_count=2,
            request_timeout_ms=60_000,
            max_concurrent_requests_per_instance=8,
        )
        assert (two.status, len(two.instances)) == ("ready", 2)
        assert {i["pid"] for i in two.instances}.isdisjoint(i["pid"] for i in before.instances)
        assert two.settings.request_timeout_ms == 60_000 and two.settings.concurrency == 8
        one = api.update_deployment(NAME, "demo", instance_count=1)
        assert (one.status, len(one.instances)) == ("ready", 1)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures, failures[:5]
    assert served[0] > 8
    for old in before.instances:  # drained, then stopped
        assert not psutil.pid_exists(old["pid"]) or psutil.Process(old["pid"]).status() == "zombie"


def test_hostile_bodies_get_4xx_and_the_next_request_is_served(api: EndpointsAPI, key: str) -> None:
    def oversized() -> Iterator[bytes]:
        for _ in range(80):
            yield b"x" * 65536  # 5 MiB, no Content-Length

    try:
        answer = post(api, key, "/score", content=oversized())
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"
    except httpx.WriteError:  # the gateway answered 413 and closed before the upload ended
        pass
    deep = b'{"input_data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = post(api, key, "/score", content=deep)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    tiny_t = score([USER])
    tiny_t["input_data"]["parameters"].update(do_sample=True, temperature=1e-45)  # type: ignore[index]
    assert post(api, key, "/score", json=tiny_t).status_code == 200
    assert isinstance(post(api, key, "/score", json=score([USER])).json()["output"], str)


def test_stream_cut_by_a_dying_worker_ends_with_an_error_event(api: EndpointsAPI, key: str) -> None:
    [instance] = api.get_deployment(NAME, "demo").instances
    body = {"messages": [USER], "max_tokens": 3000, "stream": True}
    events = []
    with httpx.stream(
        "POST",
        f"{api.get(NAME).openai_base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as answer:
        for line in answer.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if len(events) == 3:
                os.kill(instance["pid"], signal.SIGKILL)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert error["error"]["code"] == "stream_interrupted", events[-3:]
    assert "broke off" in api.get_logs(NAME, "demo")


def test_killed_gateway_comes_back_on_its_port_with_its_keys(api: EndpointsAPI, key: str) -> None:
    before = api.get(NAME)
    os.kill(before.pid, signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while api.get(NAME).status != "dead":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert api.get_deployment(NAME, "demo").status == "unavailable"
    with pytest.raises(ConflictError, match=f"chattune endpoints start {NAME}"):
        api.update(NAME, traffic={"demo": 100})
    after = api.start(NAME)
    assert (after.status, after.port) == ("running", before.port)
    assert after.pid != before.pid and after.traffic == {"demo": 100}
    assert api.get_deployment(NAME, "demo").status == "ready"
    assert isinstance(post(api, key, "/score", json=score([USER])).json()["output"], str)
