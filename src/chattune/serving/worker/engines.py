"""What a worker needs from a generation engine, as a small protocol, and its value types.

Handlers depend on :class:`Engine` only, so they test with a fake engine and a deployment can
swap the engine (``transformers`` continuous batching by default, ``vllm`` on request)
without touching HTTP code.

>>> async def answer(engine: Engine) -> str:
...     done = await complete(engine, [{"role": "user", "content": "Hi"}], GenerationParams())
...     return done.text
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from chattune.data.schema import Message
from chattune.serving.protocol import DEFAULT_MAX_NEW_TOKENS

MIN_TEMPERATURE = 0.01
"""Sampling temperatures below this decode greedily (their limit): dividing logits by a
temperature near zero overflows to inf and NaN probabilities."""


@dataclass(frozen=True)
class GenerationParams:
    """Generation settings; requests batch together only when these are equal."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    """Sampling seed: the same seed and request give the same answer (sampled alone)."""
    logprobs: int | None = None
    """Return each answer token's log probability and this many top alternatives."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """``(token id, bias)`` pairs added to the logits before the penalties and sampling."""
    presence_penalty: float = 0.0
    """Subtracted from the logit of each token the answer already has (OpenAI)."""
    frequency_penalty: float = 0.0
    """Subtracted from a token's logit per occurrence in the answer so far (OpenAI)."""
    repetition_penalty: float = 1.0
    """A logit of a token in the prompt or the answer is divided by it (multiplied when
    negative): transformers' and vLLM's ``repetition_penalty``."""
    continue_final: bool = field(default=False, compare=False)
    """Continue the conversation's final (assistant) message instead of starting a new
    assistant turn (the request's ``continue_final_message``). Per conversation, so not part
    of what a batch must share."""

    def normalized(self) -> GenerationParams:
        """Greedy requests ignore temperature/top_p/seed, so they batch regardless of them;
        a temperature under :data:`MIN_TEMPERATURE` is greedy."""
        if not self.do_sample or self.temperature < MIN_TEMPERATURE:
            return replace(self, do_sample=False, temperature=1.0, top_p=1.0, seed=None)
        return self

    @property
    def adjusts_logits(self) -> bool:
        """Whether a logit bias or a penalty changes the model's logits."""
        return bool(self.logit_bias) or (
            self.presence_penalty,
            self.frequency_penalty,
            self.repetition_penalty,
        ) != (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class TokenLogprob:
    """One answer token with its log probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Delta:
    """A piece of the answer; the last one of a stream has ``finish_reason`` set."""

    text: str
    finish_reason: str | None = None
    """``stop`` (end-of-turn token) or ``length`` (max_new_tokens reached) on the last delta."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: tuple[TokenLogprob, ...] = ()
    """The tokens this delta adds, when the request asked for logprobs."""


@dataclass(frozen=True)
class Completion:
    """A whole answer: its text, why it ended and its token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()


class RequestRefused(ValueError):
    """A request the engine cannot answer as asked: a client error (400) with ``code``."""

    code = "invalid_request"


class PromptTooLong(RequestRefused):
    """The rendered prompt does not fit the model's context (a client error, 400)."""

    code = "prompt_too_long"


class Engine(Protocol):
    """A model that loads in the background and streams answers to conversations."""

    model_name: str
    """Name reported by ``/v1/models`` and in completions (``NAME:VERSION``)."""
    load_error: str | None
    """Why loading failed (the worker then exits non-zero), else ``None``."""

    def start(self) -> None:
        """Begin loading in the background; returns at once."""
        ...

    def is_ready(self) -> bool:
        """True once the model is loaded and can answer."""
        ...

    supports_logprobs: bool
    """Whether :attr:`Delta.logprobs` is filled when asked for."""

    def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[Delta]:
        """Answer deltas for ``messages`` (ending with a user turn, or an assistant turn that
        ``params.continue_final`` continues); closing it cancels."""
        ...


async def complete(engine: Engine, messages: list[Message], params: GenerationParams) -> Completion:
    """The whole answer: the engine's own ``generate`` when it has one (a server that can
    answer in one piece, like vLLM), else :meth:`Engine.stream` run to the end and joined."""
    generate = getattr(engine, "generate", None)
    if generate is not None:
        return await generate(messages, params)
    return await join(engine.stream(messages, params))


async def join(stream: AsyncIterator[Delta]) -> Completion:
    """Run a stream of deltas to its end (closing it either way) as one :class:`Completion`."""
    parts: list[str] = []
    logprobs: list[TokenLogprob] = []
    last = Delta("")
    try:
        async for delta in stream:
            parts.append(delta.text)
            logprobs += delta.logprobs
            last = delta
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return Completion(
        "".join(parts),
        last.finish_reason or "stop",
        last.prompt_tokens,
        last.completion_tokens,
        tuple(logprobs),
    )


async def until_stop(stream: AsyncIterator[Delta], stops: tuple[str, ...]) -> AsyncIterator[Delta]:
    """``stream`` cut before the first of ``stops`` (OpenAI ``stop``): the stop text is not
    sent, the last delta says ``finish_reason="stop"``, and the engine's row is cancelled.

    Text that could be the start of a stop string is held back until it is known not to be.
    """
    hold = max(len(s) for s in stops) - 1
    pending = ""
    try:
        async for delta in stream:
            pending += delta.text
            cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                yield Delta(
                    pending[:cut],
                    "stop",
                    delta.prompt_tokens,
                    delta.completion_tokens,
                    delta.logprobs,
                )
                return
            if delta.finish_reason is not None:
                yield Delta(pending, *_rest(delta))
                return
            safe = len(pending) - hold
            if safe > 0 or delta.logprobs:
                out, pending = pending[: max(safe, 0)], pending[max(safe, 0) :]
                yield Delta(out, None, delta.prompt_tokens, delta.completion_tokens, delta.logprobs)
        if pending:  # an engine stream that ended without a finish_reason
            yield Delta(pending)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _rest(delta: Delta) -> tuple[str | None, int, int, tuple[TokenLogprob, ...]]:
    return delta.finish_reason, delta.prompt_tokens, delta.completion_tokens, delta.logprobs
