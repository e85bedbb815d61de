"""`--engine vllm`: vLLM's OpenAI server as the worker's engine, behind the same gateway
(key auth, traffic, /score, streamed chat completions), on SmolLM2, on this CPU."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chattune.serving import vllm_env
from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
SCORE = {
    "input_data": {
        "input_string": [[{"role": "user", "content": "Name a color."}]],  # the notebook's shape
        "parameters": {"max_new_tokens": 8},
    },
    "params": {},
}


@pytest.fixture
def api(workspace: Path) -> Iterator[EndpointsAPI]:
    from chattune.catalog import assets

    smol = assets.fetch(["SmolLM2-135M-Instruct"])["SmolLM2-135M-Instruct"]
    vllm_env.install()  # idempotent; minutes the first time
    endpoints = EndpointsAPI(Workspace.init(workspace), resolve_model=lambda ref: (ref, smol))
    yield endpoints
    for info in endpoints.list():
        endpoints.delete(info.name)


def test_vllm_deployment_answers_through_the_gateway_only(api: EndpointsAPI) -> None:
    endpoint = api.create("vllm-ep")
    deployment = api.create_deployment("vllm-ep", "fast", "smol:1", engine="vllm")
    assert deployment.status == "ready" and deployment.settings.engine == "vllm"
    api.update("vllm-ep", traffic={"fast": 100})
    key = {"Authorization": f"Bearer {api.get_keys('vllm-ep')['primary_key']}"}

    scored = httpx.post(endpoint.scoring_uri, json=SCORE, headers=key, timeout=120)
    assert scored.status_code == 200, scored.text
    assert isinstance(scored.json()["output"], str) and scored.json()["output"]
    assert scored.headers["azureml-model-deployment"] == "fast"

    url = endpoint.openai_base_url + "/chat/completions"
    body = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 6}
    chat = httpx.post(url, json=body, headers=key, timeout=120).json()
    assert chat["usage"]["completion_tokens"] <= 6 and chat["choices"][0]["message"]["content"]
    streamed = body | {"stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url, json=streamed, headers=key, timeout=120) as s:
        events = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] <= 6

    assert httpx.post(endpoint.scoring_uri, json=SCORE, timeout=10).status_code == 401
    worker = api.get_deployment("vllm-ep", "fast").instances[0]["port"]
    around = httpx.post(f"http://127.0.0.1:{worker}/score", json=SCORE, headers=key, timeout=10)
    assert around.status_code == 401  # the worker answers only its gateway
    # vLLM itself listens on a private port and wants the worker's secret.
    log = api.get_logs("vllm-ep", "fast", lines=2000)
    port = re.findall(r"vLLM server pid \d+ on 127\.0\.0\.1:(\d+)", log)[-1]
    direct = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10)
    assert direct.status_code == 401
