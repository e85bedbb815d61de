"""Answer shapes of an online endpoint, as pydantic models: what the routes return and what
their OpenAPI document says (the request shapes are in :mod:`chattune.serving.protocol`).

``POST /score`` answers :class:`ScoreResponse`; ``POST /v1/chat/completions`` a
:class:`ChatCompletion`, or with ``stream: true`` server-sent events each carrying a
:class:`ChatCompletionChunk` then ``data: [DONE]``; ``GET /v1/models`` a :class:`ModelList`;
every error :class:`ErrorBody`.

>>> chunk_event(ChatCompletionChunk.delta("chatcmpl-1", "m", ChunkDelta(content="Hi"), None))[:6]
b'data: '
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

FinishReason = Literal["stop", "length"]


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a one-line message naming where and how to fix."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The one error shape of every route, gateway and worker."""

    error: ErrorDetail


class ScoreResponse(BaseModel):
    """Answer of ``POST /score``: one string per conversation (a list for a batch)."""

    output: str | list[str]


class TopLogprob(BaseModel):
    """One likely token at a position, with its log probability."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """One answer token's log probability and the most likely alternatives."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)

    @classmethod
    def of(cls, token: str, logprob: float, top: list[tuple[str, float]]) -> TokenLogprob:
        """The entry of ``token`` (its UTF-8 bytes filled in) and its alternatives."""
        return cls(
            token=token,
            logprob=logprob,
            bytes=list(token.encode()),
            top_logprobs=[TopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in top],
        )


class ChoiceLogprobs(BaseModel):
    """OpenAI ``logprobs`` of a choice."""

    content: list[TokenLogprob] | None = None
    refusal: None = None


class AssistantMessage(BaseModel):
    """The answer of one choice."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None


class CompletionChoice(BaseModel):
    """One answer of a completion (``n`` of them)."""

    index: int
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: ChoiceLogprobs | None = None


class Usage(BaseModel):
    """Token counts of a completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        """The usage of a prompt and its answers' tokens."""
        total = prompt_tokens + completion_tokens
        return cls(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total
        )


class ChatCompletion(BaseModel):
    """An OpenAI ``chat.completion`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ChunkDelta(BaseModel):
    """What one chunk adds to the answer (absent fields are left out of the event)."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The one choice of a streamed chunk."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    """An OpenAI ``chat.completion.chunk`` object: one server-sent event of a stream. The last
    chunk of a stream with ``stream_options.include_usage`` has no choices and the usage."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None

    @classmethod
    def delta(
        cls,
        cid: str,
        model: str,
        delta: ChunkDelta,
        finish_reason: FinishReason | None,
        logprobs: list[TokenLogprob] | None = None,
    ) -> ChatCompletionChunk:
        """A chunk of one choice."""
        lp = None if logprobs is None else ChoiceLogprobs(content=logprobs)
        choice = ChunkChoice(delta=delta, finish_reason=finish_reason, logprobs=lp)
        return cls(id=cid, model=model, choices=[choice])


class ModelCard(BaseModel):
    """One OpenAI model object."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "chattune"


class ModelList(BaseModel):
    """``GET /v1/models``: every model the endpoint (or worker) serves."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class Reply(BaseModel):
    """A plain status answer (``/health/*``, the reconcile nudge)."""

    status: str


def completion_id() -> str:
    """A fresh OpenAI-style completion id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chunk_event(chunk: ChatCompletionChunk) -> bytes:
    """One chunk as a server-sent event, leaving out a delta's absent fields, a choice's
    absent ``logprobs`` and an absent ``usage`` (as OpenAI's stream does)."""
    body = chunk.model_dump()
    for choice in body["choices"]:
        choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        if choice["logprobs"] is None:
            del choice["logprobs"]
    if body["usage"] is None:
        del body["usage"]
    return sse(body)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n``."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place: self-contained, for an
    OpenAPI operation whose body FastAPI does not parse itself.

    >>> "$defs" in json.dumps(inline_schema(ModelList))
    False
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
