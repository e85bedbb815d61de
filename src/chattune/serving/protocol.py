"""Request and response shapes of an online endpoint (the parsing, not the conversation rules).

Two contracts on the same endpoint (DESIGN §4):

``POST /score``::

    {"input_data": {"input_string": [{"role": "user", "content": "Hi"}],
                    "parameters": {"temperature": 0.7, "max_new_tokens": 64}},
     "params": {}}
    -> {"output": "Hello! How can I help?"}

``input_string`` may also be a list of conversations (a batch); the answer is then a list of
strings in the same order: ``{"output": ["...", "..."]}``.

``POST /v1/chat/completions`` follows the OpenAI schema (``n`` must be 1); ``stream: true``
answers with server-sent events (``data: {...}`` chunks, then ``data: [DONE]``).

pydantic checks the shape; the conversation rules are the project's one validator,
:func:`chattune.data.schema.validate_conversation`. :func:`parse_request` turns every problem
into one :class:`~chattune.serving.http.ApiError` whose message names where it is, e.g.
``input_string[0][2]: two user turns in a row``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from chattune.data.schema import Message, validate_conversation
from chattune.serving.http import ApiError

Role = Literal["system", "user", "assistant"]
DEFAULT_MAX_NEW_TOKENS = 256
MAX_NEW_TOKENS_LIMIT = 8192


class ChatTurn(BaseModel):
    """One turn of a request's conversation, as it arrives (extra keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str


def as_messages(turns: list[ChatTurn]) -> list[Message]:
    """The project's :data:`~chattune.data.schema.Message` dicts of parsed turns."""
    return [{"role": t.role, "content": t.content} for t in turns]


class ScoreParameters(BaseModel):
    """Generation parameters of ``/score`` (the names the reference pipeline uses)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0, le=2.0)
    """Sampling temperature; only used when ``do_sample`` is true."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass; only used when ``do_sample`` is true."""
    do_sample: bool = False
    """Sample instead of greedy decoding."""
    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    """Most tokens to generate for the answer."""


def _shape(value: Any) -> str:
    """``batch`` when ``input_string`` is a list of lists; errors then name one branch only."""
    is_batch = isinstance(value, list) and value and isinstance(value[0], list)
    return _BATCH if is_batch else _SINGLE


_BATCH, _SINGLE = "<batch>", "<single>"
Conversations = Annotated[
    Annotated[list[list[ChatTurn]], Tag(_BATCH)] | Annotated[list[ChatTurn], Tag(_SINGLE)],
    Discriminator(_shape),
]


class ScoreInput(BaseModel):
    """``input_data`` of ``POST /score``."""

    model_config = ConfigDict(extra="forbid")

    input_string: Conversations
    """One conversation, or a list of conversations answered as a batch."""
    parameters: ScoreParameters = Field(default_factory=ScoreParameters)


class ScoreRequest(BaseModel):
    """Body of ``POST /score``."""

    model_config = ConfigDict(extra="forbid")

    input_data: ScoreInput
    params: dict[str, Any] = Field(default_factory=dict)
    """Accepted for compatibility with the reference request files; unused."""

    @property
    def is_batch(self) -> bool:
        """True when ``input_string`` is a list of conversations."""
        items = self.input_data.input_string
        return bool(items) and isinstance(items[0], list)

    def conversations(self) -> list[list[Message]]:
        """Every conversation of the request (one unless it is a batch), as messages."""
        items = self.input_data.input_string
        batch = list(items) if self.is_batch else [items]
        return [as_messages(turns) for turns in batch]  # type: ignore[arg-type]


class ChatCompletionRequest(BaseModel):
    """Body of ``POST /v1/chat/completions`` (the OpenAI fields chattune honours).

    Unknown OpenAI fields (``user``, ``presence_penalty``, ...) are ignored, as OpenAI-
    compatible servers do, so stock clients work unchanged.
    """

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatTurn]
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    stream: bool = False
    n: int = 1


Model = TypeVar("Model", bound=BaseModel)


def parse_request(model: type[Model], body: bytes) -> Model:
    """Parse and check a request body; every problem becomes one 400/422 :class:`ApiError`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    try:
        request = model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ApiError(422, "invalid_request", _describe(exc)) from None
    problems = _problems(request)
    if problems:
        raise ApiError(422, "invalid_request", "; ".join(problems))
    return request


def _problems(request: BaseModel) -> list[str]:
    """Conversation rules broken by a well-shaped request, each naming where."""
    problems: list[str] = []
    if isinstance(request, ScoreRequest):
        for i, messages in enumerate(request.conversations()):
            where = f"input_string[{i}]" if request.is_batch else "input_string"
            problems += _conversation_problems(messages, where)
    elif isinstance(request, ChatCompletionRequest):
        if request.n != 1:
            problems.append(f"n: only n=1 is supported, got {request.n}")
        problems += _conversation_problems(as_messages(request.messages), "messages")
    return problems


def _conversation_problems(messages: list[Message], where: str) -> list[str]:
    """The serving rules (ends with a user turn, no assistant needed), located at ``where``."""
    found = validate_conversation(messages, require_assistant=False, require_user_last=True)
    # The validator names the list "messages"; the request's own path replaces it.
    return [where + p.removeprefix("messages") if p.startswith("messages") else p for p in found]


def _describe(exc: pydantic.ValidationError) -> str:
    """pydantic errors as ``path: message`` with list indexes in brackets."""
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        loc = [p for p in error["loc"] if p not in (_BATCH, _SINGLE)]
        path = ""
        for p in loc:
            path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
        if path.startswith("input_data.input_string"):
            path = path.removeprefix("input_data.")
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{path or 'body'}: {message}")
    return "; ".join(dict.fromkeys(parts))


# --- responses -------------------------------------------------------------------------


def completion_id() -> str:
    """A fresh OpenAI-style completion id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chat_completion_body(
    *,
    cid: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_chunk_body(
    *,
    cid: str,
    model: str,
    delta: dict[str, str],
    finish_reason: str | None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` object (one SSE event)."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n``."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


def models_body(model: str, created: int, owner: str) -> dict[str, Any]:
    """``GET /v1/models`` answer: the one model this deployment serves."""
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": owner}],
    }
