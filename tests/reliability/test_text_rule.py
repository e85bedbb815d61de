"""One text rule at every entrance (HTTP, data files, job specs), and hostile spec files.

Lone surrogates (``"\\ud800"`` in JSON or YAML) decode to Python strings that no tokenizer
or writer can encode: each entrance refuses them with a 4xx or a one-line problem naming
where. Spec files that used to traceback or hang (a 5,000-digit integer, bytes that are not
UTF-8, a FIFO, a folder, a duplicate key) get one-line errors; every case is bounded.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chattune.data.readers import DataReader
from chattune.data.schema import Message
from chattune.errors import ChattuneError, ValidationError
from chattune.jobs.spec import load_spec
from chattune.serving.worker.app import create_worker_app
from chattune.serving.worker.engines import Delta, GenerationParams
from tests.e2e.cli import chattune
from tests.reliability.apps import KEY, CannedEngine, gateway_app, worker_app

BAD = "\ud800"
USER: list[dict[str, Any]] = [{"role": "user", "content": "Hi"}]


def bounded(call: Callable[[], Any], seconds: float = 10.0) -> Any:
    """``call()``'s result or exception, failing the test if it takes over ``seconds``."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # handed to the test thread
            out["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"no answer within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out.get("value")


# --- HTTP -------------------------------------------------------------------------------

REQUESTS = {
    "score content": (
        "/score",
        {"input_data": {"input_string": [{"role": "user", "content": f"a{BAD}"}]}},
        "input_string[0].content",
    ),
    "score batch": (
        "/score",
        {"input_data": {"input_string": [USER, [{"role": "user", "content": BAD}]]}},
        "input_string[1][0].content",
    ),
    "score system": (
        "/score",
        {"input_data": {"input_string": [{"role": "system", "content": "\udc00"}, *USER]}},
        "input_string[0].content",
    ),
    "chat content": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": f"x{BAD}y"}]},
        "messages[0].content",
    ),
    "chat text part": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": BAD}]}]},
        "messages[0].content[0].text",
    ),
    "chat stop": ("/v1/chat/completions", {"messages": USER, "stop": [BAD]}, "stop[0]"),
    "chat streamed": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": BAD}], "stream": True},
        "messages[0].content",
    ),
}


@pytest.fixture(params=["gateway", "worker"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> TestClient:
    if request.param == "gateway":
        headers = {"Authorization": f"Bearer {KEY}"}
        return TestClient(gateway_app(tmp_path), headers=headers, raise_server_exceptions=False)
    return TestClient(worker_app(None), raise_server_exceptions=False)


@pytest.mark.parametrize("case", list(REQUESTS))
def test_lone_surrogates_are_a_4xx_naming_where(app: TestClient, case: str) -> None:
    path, body, where = REQUESTS[case]
    # json.dumps escapes the surrogate as \ud800, exactly what a client sends.
    answer = app.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code in (400, 422), (answer.status_code, answer.text)
    message = answer.json()["error"]["message"]
    assert message.startswith(f"{where}: ") and "lone surrogate" in message, message
    assert app.post("/score", json={"input_data": {"input_string": USER}}).status_code == 200


class FailsMidStream(CannedEngine):
    """Streams one word, then fails (a tokenizer or device error after the answer began)."""

    async def stream(
        self, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        yield Delta("Hello", None, prompt_tokens=3, completion_tokens=1)
        raise TypeError("the engine broke")


def test_a_stream_that_fails_after_its_first_chunk_ends_with_an_error_and_done() -> None:
    client = TestClient(create_worker_app(FailsMidStream(), "demo", secret=None))  # type: ignore[arg-type]
    answer = client.post("/v1/chat/completions", json={"messages": USER, "stream": True})
    events = [line[6:] for line in answer.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events
    error = json.loads(events[-2])["error"]
    assert error["code"] == "internal_error" and "the engine broke" not in error["message"]
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "Hello"


# --- data files -------------------------------------------------------------------------


def test_lone_surrogates_in_a_data_file_are_file_line_problems(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": BAD}, {"role": "assistant", "content": "yo"}]},
        {
            "prompt": f"p{BAD}",
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        },
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = list(DataReader(data))
    assert [r.ok for r in records] == [True, False, False]
    assert [p.text for p in records[1].problems] == [
        "messages[0].content: text holds a lone surrogate at character 0 (not valid Unicode)"
    ]
    assert records[2].problems[0].field == "prompt"
    for command in (["data", "validate"], ["data", "show"]):
        done = chattune(*command, str(data), check=False, timeout=60)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        assert "train.jsonl" in done.stdout + done.stderr
    validate = chattune("data", "validate", str(data), check=False, timeout=60)
    assert validate.returncode != 0 and "line 2" in validate.stdout + validate.stderr


# --- job specs --------------------------------------------------------------------------

GOOD = "model: tiny-random-phi3\ndata: {train: train.jsonl}\n"
SPECS: dict[str, tuple[Callable[[Path], None], str]] = {
    "duplicate key": (
        lambda p: p.write_text("model: a\ndata: {train: x}\nmodel: b\n"),
        "job.yaml:3: not valid YAML (duplicate key 'model' (first on line 1, again on line 3)",
    ),
    "5,000-digit integer": (
        lambda p: p.write_text(GOOD + f"parameters: {{max_steps: {'9' * 5000}}}\n"),
        "job.yaml:3: not valid YAML (an integer of 5000 digits is too large)",
    ),
    "latin-1 bytes": (
        lambda p: p.write_bytes(b"model: caf\xe9\n"),
        "job.yaml:1: not UTF-8 text (byte 11 of the file)",
    ),
    "UTF-16": (lambda p: p.write_text(GOOD, encoding="utf-16"), "job.yaml:1: not UTF-8 text"),
    "lone surrogate": (
        lambda p: p.write_text('model: "\\ud800"\ndata: {train: x}\n'),
        "job.yaml: model: text holds a lone surrogate at character 0",
    ),
    "FIFO": (lambda p: os.mkfifo(p), "job.yaml: not a regular file"),
    "folder": (lambda p: p.mkdir(), "job.yaml: not a regular file"),
    "2 MiB": (
        lambda p: p.write_text(GOOD + "description: " + "x" * (2 << 20) + "\n"),
        "job.yaml: larger than 1024 KiB",
    ),
    "5,000-character experiment": (
        lambda p: p.write_text(GOOD + f"experiment: {'e' * 5000}\n"),
        "experiment has 5000 characters; MLflow takes at most 500",
    ),
}


@pytest.mark.parametrize("case", list(SPECS))
def test_hostile_spec_files_get_one_line_errors(tmp_path: Path, case: str) -> None:
    make, expected = SPECS[case]
    path = tmp_path / "job.yaml"
    make(path)
    with pytest.raises(ChattuneError) as caught:
        bounded(lambda: load_spec(path))
    assert isinstance(caught.value, ValidationError), caught.value
    message = str(caught.value.message)
    assert expected in message.replace(str(tmp_path) + "/", ""), message
    assert "\n" not in message and caught.value.hint
