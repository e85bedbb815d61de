"""The ``vllm`` engine of a worker: vLLM's OpenAI server as a child process, behind the
worker's HTTP app (so the gateway's auth, routing, probes and request settings are the same as
for every engine). The server listens on a private loopback port and wants a per-process
secret key, so nothing but its worker can call it.

Install the environment first: ``chattune engines install vllm`` (:mod:`chattune.serving.vllm_env`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chattune.compute import lifeline
from chattune.errors import RuntimeFailure
from chattune.serving.settings import LIVENESS_DELAY_S
from chattune.serving.vllm_env import (
    HEALTH_PATH,
    default_venv,
    free_port,
    is_installed,
    probe,
    server_command,
)

if TYPE_CHECKING:
    import httpx
    import openai

    from chattune.data.schema import Message
    from chattune.serving.settings import DeploymentSettings
    from chattune.serving.worker.engines import Completion, Delta, GenerationParams, TokenLogprob

log = logging.getLogger("chattune.serving.vllm")
ORPHAN_GRACE_S = 1.0
"""Seconds vLLM gets to stop after its worker's gateway died (then SIGKILL, group-wide)."""

QUIET_TIMEOUT_S = 600.0
"""Most seconds a starting server may print nothing (compiling on a loaded CPU goes quiet
for minutes; a hung one never speaks again)."""
READY_MARGIN_S = 30.0


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

    supports_logprobs = True
    """vLLM returns ``logprobs`` and ``top_logprobs``; they are passed through."""

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
        delay = settings.liveness_probe.initial_delay if settings else LIVENESS_DELAY_S["vllm"]
        self.ready_timeout = max(delay - READY_MARGIN_S, READY_MARGIN_S)
        """Seconds the server may take to turn healthy: the liveness budget, less a margin
        so that this worker says why before its gateway restarts it."""
        self.load_error: str | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: deque[str] = deque(maxlen=40)
        self._ready = threading.Event()
        self._stopping = False
        self._transport = transport  # tests answer requests without a server
        self._key = secrets.token_urlsafe(32)  # the server answers only its worker
        self._openai: openai.AsyncOpenAI | None = None
        self._client_loop: object = None
        self.tokenizer: Any = None
        """The model's tokenizer, for :meth:`prepared` (loaded on first use)."""

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
        """Ready once the server answers its health check. The server's own output is its
        progress (loading, compiling, capturing): a server that prints nothing new for
        :data:`QUIET_TIMEOUT_S` while not healthy, or is not healthy within the liveness
        budget, is stopped with a message that says which and quotes its last line."""
        started = time.monotonic()
        last_line, last_change = None, started
        while self.proc is not None and self.proc.poll() is None:
            if probe(self.host, self.port):
                try:
                    self.prepared([])  # the tokenizer, loaded before the first request
                except Exception as exc:
                    self.load_error = f"could not load the tokenizer: {exc}"
                    self.stop()
                    return
                log.info("vLLM server ready on port %d", self.port)
                self._ready.set()
                return
            now = time.monotonic()
            line = self.output[-1] if self.output else None
            if line is not last_line:  # a new line object: the server printed something
                last_line, last_change = line, now
            why = self._stalled(now - started, now - last_change)
            if why is not None:
                self.load_error = why
                log.error("%s", why)
                self.stop()
                return
            time.sleep(1.0)

    def _stalled(self, waited: float, quiet: float) -> str | None:
        """Why to give up waiting for the server, or ``None`` to keep waiting."""
        last = self.output[-1].strip()[:200] if self.output else "(no output)"
        if quiet > QUIET_TIMEOUT_S:
            return (
                f"vLLM printed nothing for {quiet:.0f}s and does not answer {HEALTH_PATH} "
                f"(waited {waited:.0f}s); its last line: {last}"
            )
        if waited > self.ready_timeout:
            return (
                f"vLLM was not ready within {self.ready_timeout:.0f}s (still printing; raise "
                f"liveness_initial_delay of the deployment); its last line: {last}"
            )
        return None

    def _last_error(self) -> str:
        lines = [x for x in self.output if x.strip()]
        errors = [x for x in lines if "Error" in x or "error" in x]
        return (errors or lines or ["(no output)"])[-1].strip()[:300]

    async def generate(self, messages: list[Message], params: GenerationParams) -> Completion:
        """One whole answer from vLLM's non-streamed chat completion (one JSON body: less
        work per token for vLLM's API server and this worker than a stream)."""
        from chattune.serving.worker.engines import Completion

        with _refusals():
            answer = await self._client().chat.completions.create(
                **self._request(messages, params, stream=False)
            )
        choice, usage = answer.choices[0], answer.usage
        return Completion(
            choice.message.content or "",
            choice.finish_reason or "stop",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            _logprobs(choice.logprobs),
        )

    async def stream(
        self, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        """Answer deltas from vLLM's streaming chat completion; closing it aborts the request."""
        from chattune.serving.worker.engines import Delta

        with _refusals():
            chunks = await self._client().chat.completions.create(
                **self._request(messages, params, stream=True)
            )
        finish: str | None = None
        try:
            async for chunk in chunks:
                if chunk.usage is not None and not chunk.choices:
                    usage = chunk.usage
                    yield Delta("", finish or "stop", usage.prompt_tokens, usage.completion_tokens)
                    return
                for choice in chunk.choices:
                    text = choice.delta.content or ""
                    finish = choice.finish_reason or finish
                    logprobs = _logprobs(choice.logprobs)
                    if text or logprobs:
                        yield Delta(text, logprobs=logprobs)
        finally:
            await chunks.close()  # vLLM aborts a request whose client is gone
        yield Delta("", finish or "stop")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _client(self) -> openai.AsyncOpenAI:
        """One client (and connection pool) for every request of the running event loop (the
        worker has one; a new loop, as in tests, gets a new client)."""
        import asyncio

        import httpx
        import openai

        loop = asyncio.get_running_loop()
        if self._openai is None or self._client_loop is not loop:
            self._client_loop = loop
            http = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=5.0),
                limits=httpx.Limits(max_connections=256),
                transport=self._transport,
            )
            self._openai = openai.AsyncOpenAI(
                base_url=f"http://{self.host}:{self.port}/v1",
                api_key=self._key,
                max_retries=0,
                http_client=http,
            )
        return self._openai

    def prepared(self, messages: list[Message]) -> list[Message]:
        """``messages`` as training and the transformers engine give them to the template
        (:func:`~chattune.data.chat.prepare_messages`: a system turn folded into the first
        user turn where the template would drop it)."""
        from chattune.data.chat import prepare_messages

        if self.tokenizer is None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        return prepare_messages(self.tokenizer, messages)

    def _request(
        self, messages: list[Message], params: GenerationParams, stream: bool
    ) -> dict[str, Any]:
        """Keyword arguments of ``chat.completions.create`` for one answer."""
        params = params.normalized()
        extra: dict[str, object] = {}
        if params.repetition_penalty != 1.0:
            extra["repetition_penalty"] = params.repetition_penalty
        if params.continue_final:  # vLLM's names for continuing the final assistant message
            extra |= {"continue_final_message": True, "add_generation_prompt": False}
        request: dict[str, Any] = {
            "model": self.model_name,
            "messages": self.prepared(messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature if params.do_sample else 0.0,
            "top_p": params.top_p,
            "stream": stream,
            "extra_body": extra or None,
        }
        if params.seed is not None:
            request["seed"] = params.seed
        if params.logit_bias:
            request["logit_bias"] = {str(token): bias for token, bias in params.logit_bias}
        if params.presence_penalty:
            request["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            request["frequency_penalty"] = params.frequency_penalty
        if params.logprobs is not None:
            request |= {"logprobs": True, "top_logprobs": params.logprobs}
        if stream:
            request["stream_options"] = {"include_usage": True}
        return request


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """vLLM's errors as the worker's: a 400 is the client's request (answered 400 with
    vLLM's message), anything else a failure of the engine."""
    import openai

    from chattune.serving.worker.engines import RequestRefused

    try:
        yield
    except openai.BadRequestError as exc:
        raise RequestRefused(_message(exc)) from None
    except openai.APIStatusError as exc:
        raise RuntimeError(f"vLLM answered {exc.status_code}: {_message(exc)}") from None
    except openai.APIConnectionError as exc:
        raise RuntimeError(f"vLLM is unreachable: {exc}") from None


def _message(exc: openai.APIStatusError) -> str:
    """The message of vLLM's error body (``{"error": {"message"}}`` or ``{"message"}``)."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:500]
    return exc.message[:500]


def _logprobs(logprobs: Any) -> tuple[TokenLogprob, ...]:
    """OpenAI ``logprobs`` of a choice as the engine's :class:`TokenLogprob` entries."""
    from chattune.serving.worker.engines import TokenLogprob

    if logprobs is None or not logprobs.content:
        return ()
    return tuple(
        TokenLogprob(
            entry.token,
            entry.logprob,
            tuple((top.token, top.logprob) for top in entry.top_logprobs or ()),
        )
        for entry in logprobs.content
    )
