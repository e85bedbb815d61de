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
from dataclasses import dataclass
from typing import Protocol

from chattune.data.schema import Message
from chattune.serving.protocol import DEFAULT_MAX_NEW_TOKENS


@dataclass(frozen=True)
class GenerationParams:
    """Generation settings; requests batch together only when these are equal."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0

    def normalized(self) -> GenerationParams:
        """Greedy requests ignore temperature/top_p, so they batch regardless of them."""
        if not self.do_sample or self.temperature == 0.0:
            return GenerationParams(self.max_new_tokens, False, 1.0, 1.0)
        return self


@dataclass(frozen=True)
class Delta:
    """A piece of the answer; the last one of a stream has ``finish_reason`` set."""

    text: str
    finish_reason: str | None = None
    """``stop`` (end-of-turn token) or ``length`` (max_new_tokens reached) on the last delta."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """A whole answer: its text, why it ended and its token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class PromptTooLong(ValueError):
    """The rendered prompt does not fit the model's context (a client error, 400)."""


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

    def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[Delta]:
        """Answer deltas for ``messages`` (ending with a user turn); closing it cancels."""
        ...


async def complete(engine: Engine, messages: list[Message], params: GenerationParams) -> Completion:
    """The whole answer: the engine's own ``generate`` when it has one (a server that can
    answer in one piece, like vLLM), else :meth:`Engine.stream` run to the end and joined."""
    generate = getattr(engine, "generate", None)
    if generate is not None:
        return await generate(messages, params)  # type: ignore[no-any-return]
    parts: list[str] = []
    last = Delta("")
    stream = engine.stream(messages, params)
    try:
        async for delta in stream:
            parts.append(delta.text)
            last = delta
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return Completion(
        "".join(parts), last.finish_reason or "stop", last.prompt_tokens, last.completion_tokens
    )
