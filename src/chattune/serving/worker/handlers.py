"""Request handlers of a worker: protocol in, engine call, protocol out; no HTTP routing.

The engine is injected, so these run in tests with a fake engine. The deployment's request
settings are enforced here: a request waits at most ``max_queue_wait_ms`` for one of the
``max_concurrent_requests_per_instance`` slots (else 429), then has ``request_timeout_ms`` to
finish (else 408, and its generation row is cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import TypeVar

from chattune.data.schema import Message
from chattune.serving import protocol, responses
from chattune.serving.http import ApiError, error_body
from chattune.serving.responses import ChatCompletionChunk, ChunkDelta
from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.engines import (
    Completion,
    Delta,
    Engine,
    GenerationParams,
    RequestRefused,
    TokenLogprob,
    complete,
    join,
    until_stop,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


class Handlers:
    """``/score``, ``/v1/chat/completions`` and ``/v1/models`` over one engine.

    >>> handlers = Handlers(engine, "demo", DeploymentSettings(request_timeout_ms=5000))
    """

    def __init__(
        self, engine: Engine, deployment: str, settings: DeploymentSettings | None = None
    ) -> None:
        self.engine = engine
        self.deployment = deployment
        self.settings = settings or DeploymentSettings()
        self.created = int(time.time())
        self._slots = asyncio.Semaphore(self.settings.concurrency)

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one concurrency slot; 503 while loading, 429 when none frees up in time."""
        if not self.engine.is_ready():
            raise ApiError(503, "not_ready", f"deployment {self.deployment} is still loading")
        try:
            await asyncio.wait_for(self._slots.acquire(), self.settings.max_queue_wait_ms / 1000)
        except TimeoutError:
            raise ApiError(
                429,
                "too_many_requests",
                f"deployment {self.deployment} is busy: max_concurrent_requests_per_instance="
                f"{self.settings.concurrency} and no slot freed within "
                f"max_queue_wait_ms={self.settings.max_queue_wait_ms}; retry later",
            ) from None
        try:
            yield
        finally:
            self._slots.release()

    async def _timed(self, work: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(work, self.settings.request_timeout_ms / 1000)
        except TimeoutError:
            raise ApiError(
                408,
                "request_timeout",
                f"deployment {self.deployment} did not answer within request_timeout_ms="
                f"{self.settings.request_timeout_ms}; ask for fewer max_new_tokens or raise "
                "the timeout",
            ) from None
        except RequestRefused as exc:
            raise ApiError(400, exc.code, str(exc)) from None

    async def score(self, request: protocol.ScoreRequest) -> responses.ScoreResponse:
        """``{"output": str}`` for one conversation, in either shape (the reference notebook
        sends ``[conversation]``), ``{"output": [str, ...]}`` for several (DESIGN §4)."""
        p = request.input_data.parameters
        params = GenerationParams(p.max_new_tokens, p.do_sample, p.temperature, p.top_p)
        params = params.normalized()  # a near-zero temperature decodes greedily, never NaN
        async with self.admitted():
            # Conversations of one request run concurrently, so the engine batches them.
            work = asyncio.gather(
                *(
                    complete(self.engine, c, replace(params, continue_final=request.continues(c)))
                    for c in request.conversations()
                )
            )
            done = await self._timed(work)
        texts = [c.text for c in done]
        return responses.ScoreResponse(output=texts if len(texts) > 1 else texts[0])

    async def chat_completion(
        self, request: protocol.ChatCompletionRequest
    ) -> responses.ChatCompletion | AsyncIterator[bytes]:
        """An OpenAI completion object, or SSE chunks when ``stream`` is true."""
        params = _chat_params(request)
        if params.logprobs is not None and not getattr(self.engine, "supports_logprobs", False):
            raise ApiError(
                400,
                "invalid_request",
                f"logprobs: deployment {self.deployment}'s engine does not return them; "
                "remove logprobs",
            )
        messages, stops = request.conversation(), request.stops()
        if request.stream:
            usage = bool(request.stream_options and request.stream_options.include_usage)
            # Take the slot before the response starts, so 429/503 are real HTTP statuses.
            slot = self.admitted()
            await slot.__aenter__()
            return _release_after(slot, self._stream(messages, params, stops, usage))
        # n answers run at once (the engine batches them); seeded ones get seed, seed+1, ...
        seeds = [None if params.seed is None else params.seed + i for i in range(request.n)]
        async with self.admitted():
            work = asyncio.gather(
                *(self._answer(messages, replace(params, seed=seed), stops) for seed in seeds)
            )
            done = await self._timed(work)
        return responses.ChatCompletion(
            id=responses.completion_id(),
            model=self.engine.model_name,
            choices=[_choice(i, c, params.logprobs is not None) for i, c in enumerate(done)],
            usage=responses.Usage.of(done[0].prompt_tokens, sum(c.completion_tokens for c in done)),
        )

    async def _answer(
        self, messages: list[Message], params: GenerationParams, stops: tuple[str, ...]
    ) -> Completion:
        if stops:
            return await join(until_stop(self.engine.stream(messages, params), stops))
        return await complete(self.engine, messages, params)

    async def _stream(
        self,
        messages: list[Message],
        params: GenerationParams,
        stops: tuple[str, ...],
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        """SSE chunks; a timeout or error mid-stream becomes a final error event."""
        cid, model = responses.completion_id(), self.engine.model_name
        deadline = time.monotonic() + self.settings.request_timeout_ms / 1000
        opening = ChunkDelta(role="assistant", content="")
        yield responses.chunk_event(ChatCompletionChunk.delta(cid, model, opening, None))
        stream = self.engine.stream(messages, params)
        if stops:
            stream = until_stop(stream, stops)
        last = Delta("")
        try:
            while True:
                remaining = max(deadline - time.monotonic(), 0.001)
                try:
                    delta = await asyncio.wait_for(anext(stream), remaining)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    limit = self.settings.request_timeout_ms
                    why = f"stream exceeded request_timeout_ms={limit}"
                    yield responses.sse(error_body("request_timeout", why))
                    break
                except RequestRefused as exc:
                    yield responses.sse(error_body(exc.code, str(exc)))
                    break
                except Exception:  # the client has a 200 already: the error goes in-band
                    log.exception("stream of deployment %s failed", self.deployment)
                    why = f"deployment {self.deployment} failed while answering; see its log"
                    yield responses.sse(error_body("internal_error", why))
                    break
                last = delta
                chunk = _delta_chunk(cid, model, delta, params.logprobs is not None)
                if chunk is not None:
                    yield responses.chunk_event(chunk)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if include_usage and last.finish_reason is not None:
            usage = responses.Usage.of(last.prompt_tokens, last.completion_tokens)
            final = ChatCompletionChunk(id=cid, model=model, choices=[], usage=usage)
            yield responses.chunk_event(final)
        yield responses.sse("[DONE]")

    def models(self) -> responses.ModelList:
        """The ``/v1/models`` answer: the one model this worker serves."""
        card = responses.ModelCard(id=self.engine.model_name, created=self.created)
        return responses.ModelList(data=[card])


async def _release_after(
    slot: AbstractAsyncContextManager[None], chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await slot.__aexit__(None, None, None)


def _chat_params(request: protocol.ChatCompletionRequest) -> GenerationParams:
    """Engine parameters of a chat request (temperature 0 is greedy, as in OpenAI)."""
    top = request.top_logprobs or 0
    return GenerationParams(
        continue_final=request.continues(),
        max_new_tokens=request.max_completion_tokens
        or request.max_tokens
        or protocol.DEFAULT_MAX_NEW_TOKENS,
        do_sample=request.temperature > 0,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        logprobs=top if request.logprobs else None,
        logit_bias=request.biases(),
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=request.repetition_penalty,
    ).normalized()


def _entries(logprobs: tuple[TokenLogprob, ...]) -> list[responses.TokenLogprob]:
    return [responses.TokenLogprob.of(t.token, t.logprob, list(t.top)) for t in logprobs]


def _choice(index: int, done: Completion, logprobs: bool) -> responses.CompletionChoice:
    return responses.CompletionChoice(
        index=index,
        message=responses.AssistantMessage(content=done.text),
        finish_reason=_reason(done.finish_reason),
        logprobs=responses.ChoiceLogprobs(content=_entries(done.logprobs)) if logprobs else None,
    )


def _reason(reason: str | None) -> responses.FinishReason | None:
    return "length" if reason == "length" else None if reason is None else "stop"


def _delta_chunk(cid: str, model: str, delta: Delta, logprobs: bool) -> ChatCompletionChunk | None:
    """The SSE chunk of one delta; ``None`` when it carries nothing."""
    if not delta.text and delta.finish_reason is None and not delta.logprobs:
        return None
    return ChatCompletionChunk.delta(
        cid,
        model,
        ChunkDelta(content=delta.text or None),
        _reason(delta.finish_reason),
        _entries(delta.logprobs) if logprobs else None,
    )
