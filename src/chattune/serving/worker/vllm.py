"""The ``vllm`` engine of a worker: vLLM's OpenAI server as a child process, behind the
worker's HTTP app (so the gateway's auth, routing, probes and request settings are the same as
for every engine). The server listens on a private loopback port and wants a per-process
secret key, so nothing but its worker can call it.

Install the environment first: ``chattune engines install vllm`` (:mod:`chattune.serving.vllm_env`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from chattune.compute import lifeline
from chattune.errors import RuntimeFailure
from chattune.serving.vllm_env import (
    STARTUP_TIMEOUT_S,
    default_venv,
    free_port,
    is_installed,
    probe,
    server_command,
)

if TYPE_CHECKING:
    import httpx

    from chattune.data.schema import Message
    from chattune.serving.settings import DeploymentSettings
    from chattune.serving.worker.engines import Completion, Delta, GenerationParams

log = logging.getLogger("chattune.serving.vllm")
ORPHAN_GRACE_S = 1.0
"""Seconds vLLM gets to stop after its worker's gateway died (then SIGKILL, group-wide)."""


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop the server and its process group (a session of its own): SIGTERM, then SIGKILL.

    vLLM's API server stops its engine processes on SIGTERM; whatever of the group still runs
    after ``grace`` seconds (zombies aside) is killed.
    """
    from chattune.serving import procs

    def signal_group(sig: signal.Signals, wait: float) -> None:
        members = procs.group_members(proc.pid)
        leader = [m for m in members if m.pid == proc.pid] if sig == signal.SIGTERM else []
        for member in leader or members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member.pid, sig)
        deadline = time.monotonic() + wait
        while procs.group_members(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap our own child as soon as it exits
            time.sleep(0.1)

    signal_group(signal.SIGTERM, grace)
    signal_group(signal.SIGKILL, 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1.0)


class VllmEngine:
    """The worker's :class:`~chattune.serving.worker.engines.Engine` backed by a vLLM server.

    :meth:`start` launches vLLM's OpenAI server on a private loopback port (from
    :func:`default_venv`, which ``chattune engines install vllm`` creates)
    and turns ready when it answers :data:`HEALTH_PATH`; :meth:`stream` forwards each
    conversation to its ``/v1/chat/completions``. The server dies with the worker: stopped at
    exit (its group within :data:`ORPHAN_GRACE_S` when the gateway is gone), and sent SIGTERM
    by the kernel if the worker is killed.
    """

    supports_logprobs = False  # the handlers refuse `logprobs` for this engine

    def __init__(
        self,
        model_path: str | Path,
        model_name: str,
        settings: DeploymentSettings | None = None,
        *,
        venv: Path | None = None,
        max_model_len: int = 2048,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.venv = venv or default_venv()
        self.max_model_len = max_model_len
        self.max_num_seqs = settings.max_batch_size if settings is not None else None
        self.load_error: str | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: deque[str] = deque(maxlen=40)
        self._ready = threading.Event()
        self._stopping = False
        self._transport = transport  # tests answer requests without a server
        self._key = secrets.token_urlsafe(32)  # the server answers only its worker
        self._client: httpx.AsyncClient | None = None
        self._client_loop: object = None

    def start(self) -> None:
        """Launch the server in the background; returns at once."""
        threading.Thread(target=self._main, name="vllm-server", daemon=True).start()

    def is_ready(self) -> bool:
        """True once the server answers its health check."""
        return self._ready.is_set()

    def stop(self) -> None:
        """Stop the server and everything it started."""
        self._stopping = True
        self._ready.clear()
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)

    def _stop_now(self) -> None:
        """The worker's gateway is gone: stop the server's whole group at once."""
        self._stopping = True
        self._ready.clear()
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc, grace=ORPHAN_GRACE_S)

    def _main(self) -> None:
        """Start, wait until healthy, then copy the server's output until it exits.

        The thread lives as long as the server: the parent-death signal is tied to it.
        """
        try:
            if not is_installed(self.venv):
                raise RuntimeFailure(
                    f"vLLM is not installed at {self.venv}",
                    "run `chattune engines install vllm`",
                )
            self.port = free_port(self.host)
            argv, env = server_command(
                self.model_path,
                self.host,
                self.port,
                served_model_name=self.model_name,
                max_model_len=self.max_model_len,
                venv=self.venv,
                max_num_seqs=self.max_num_seqs,
                extra_env={"VLLM_API_KEY": self._key},
            )
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lifeline.pdeathsig_preexec(signal.SIGTERM),  # this thread waits on it
            )
        except Exception as exc:
            self.load_error = str(exc)
            log.error("could not start vLLM: %s", exc)
            return
        atexit.register(self.stop)
        lifeline.on_orphaned(self._stop_now)
        log.info("vLLM server pid %d on %s:%d", self.proc.pid, self.host, self.port)
        threading.Thread(target=self._wait_ready, name="vllm-ready", daemon=True).start()
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            sys.stderr.write(f"[vllm] {line}\n")
        code = self.proc.wait()
        if self._stopping:
            return
        if not self._ready.is_set():
            self.load_error = self.load_error or (
                f"vLLM exited with {code} while starting: {self._last_error()}"
            )
            return
        self._ready.clear()
        log.error("vLLM server exited with %d: %s; stopping the worker", code, self._last_error())
        os.kill(os.getpid(), signal.SIGTERM)  # a worker without its engine is dead: restart it

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.proc is not None and self.proc.poll() is None:
            if probe(self.host, self.port):
                log.info("vLLM server ready on port %d", self.port)
                self._ready.set()
                return
            time.sleep(1.0)
        if self.proc is not None and self.proc.poll() is None:
            self.load_error = f"vLLM did not become ready within {STARTUP_TIMEOUT_S:.0f}s"
            self.stop()

    def _last_error(self) -> str:
        lines = [x for x in self.output if x.strip()]
        errors = [x for x in lines if "Error" in x or "error" in x]
        return (errors or lines or ["(no output)"])[-1].strip()[:300]

    async def generate(self, messages: list[Message], params: GenerationParams) -> Completion:
        """One whole answer from vLLM's non-streamed chat completion (one JSON body: less
        work per token for vLLM's API server and this worker than a stream)."""
        from chattune.serving.worker.engines import Completion

        response = await self._http().post(
            self._url, json=self._body(messages, params, stream=False), headers=self._auth
        )
        self._check(response.status_code, response.text)
        answer = response.json()
        choice, usage = answer["choices"][0], answer.get("usage") or {}
        return Completion(
            choice["message"].get("content") or "",
            choice.get("finish_reason") or "stop",
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
        )

    async def stream(
        self, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        """Answer deltas from vLLM's streaming chat completion; closing it aborts the request."""
        from chattune.serving.worker.engines import Delta

        body = self._body(messages, params, stream=True)
        finish: str | None = None
        async with self._http().stream("POST", self._url, json=body, headers=self._auth) as got:
            if got.status_code != 200:
                self._check(got.status_code, (await got.aread()).decode(errors="replace"))
            async for line in got.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                usage = chunk.get("usage")
                if usage and not chunk.get("choices"):
                    yield Delta(
                        "",
                        finish or "stop",
                        usage.get("prompt_tokens", 0),
                        usage.get("completion_tokens", 0),
                    )
                    return
                for choice in chunk.get("choices", []):
                    text = (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
                    if text:
                        yield Delta(text)
        yield Delta("", finish or "stop")

    @property
    def _url(self) -> str:
        return f"http://{self.host}:{self.port}/v1/chat/completions"

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _http(self) -> httpx.AsyncClient:
        """One pooled client for every request of the running event loop (the worker has one;
        a new loop, as in tests, gets a new client)."""
        import asyncio

        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client_loop = loop
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=5.0),
                limits=httpx.Limits(max_connections=256),
                transport=self._transport,
            )
        return self._client

    def _body(
        self, messages: list[Message], params: GenerationParams, stream: bool
    ) -> dict[str, object]:
        params = params.normalized()
        body: dict[str, object] = {
            "model": self.model_name,
            "messages": messages,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature if params.do_sample else 0.0,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.continue_final:  # vLLM's names for continuing the final assistant message
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _check(status: int, detail: str) -> None:
        """vLLM's error answer as the worker's exception (a too-long prompt is the client's)."""
        from chattune.serving.worker.engines import PromptTooLong

        if status == 200:
            return
        message = _error_message(detail)
        if status == 400 and _too_long(message):
            raise PromptTooLong(message)
        raise RuntimeError(f"vLLM answered {status}: {message}")


def _too_long(message: str) -> bool:
    """vLLM's words for a prompt that does not fit ``--max-model-len``."""
    return "maximum context length" in message or "maximum model length" in message


def _error_message(detail: str) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(detail).get("error", {})
        return str(error.get("message", detail) if isinstance(error, dict) else error)[:500]
    return detail[:500]
