"""Request and response shapes of an online endpoint (the parsing, not the conversation rules).

Two contracts on the same endpoint (DESIGN §4):

``POST /score``::

    {"input_data": {"input_string": [{"role": "user", "content": "Hi"}],
                    "parameters": {"temperature": 0.7, "max_new_tokens": 64}},
     "params": {}}
    -> {"output": "Hello! How can I help?"}

``input_string`` may also be a list of conversations (a batch); the answer is then a list of
strings in the same order: ``{"output": ["...", "..."]}``.

A conversation ending with an assistant turn is continued: the answer is the text that
follows that message (transformers' ``continue_final_message``); the request starts a new
assistant turn instead when it says ``add_generation_prompt: true`` or
``continue_final_message: false`` (vLLM's names; in ``parameters`` for ``/score``, top-level
for ``/v1/chat/completions``).

``POST /v1/chat/completions`` follows the OpenAI schema as the official client uses it
(:class:`ChatCompletionRequest` lists the fields honoured; those the engine cannot honour are
refused by name); ``stream: true`` answers with server-sent events (``data: {...}`` chunks,
then ``data: [DONE]``).

Bodies nested deeper than :data:`MAX_JSON_DEPTH` are refused before validation.

pydantic checks the shape, strictly: a JSON ``true`` is no ``max_tokens`` and ``"2"`` no
``n`` (no coercion); the conversation rules are the project's one validator,
:func:`chattune.data.schema.validate_conversation`. :func:`parse_request` turns every problem
into one :class:`~chattune.serving.http.ApiError` whose message names where it is, e.g.
``input_string[0][2]: two user turns in a row``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from chattune.data.schema import Message, validate_conversation
from chattune.data.text import invalid_text, json_depth, surrogate_message
from chattune.serving.http import ApiError

Role = Literal["system", "user", "assistant"]
DEFAULT_MAX_NEW_TOKENS = 256
MAX_NEW_TOKENS_LIMIT = 8192


class ChatTurn(BaseModel):
    """One turn of a request's conversation, as it arrives (extra keys are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    role: Role
    content: str


def as_messages(turns: list[ChatTurn]) -> list[Message]:
    """The project's :data:`~chattune.data.schema.Message` dicts of parsed turns."""
    return [{"role": t.role, "content": t.content} for t in turns]


class ScoreParameters(BaseModel):
    """Generation parameters of ``/score`` (the names the reference pipeline uses)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    temperature: float = Field(1.0, ge=0.0, le=2.0)
    """Sampling temperature; only used when ``do_sample`` is true."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass; only used when ``do_sample`` is true."""
    do_sample: bool = False
    """Sample instead of greedy decoding."""
    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    """Most tokens to generate for the answer."""
    add_generation_prompt: bool | None = None
    """Start a new assistant turn (vLLM's name). Default: yes, unless the conversation ends
    with an assistant turn, which is then continued."""
    continue_final_message: bool | None = None
    """Continue the final assistant message (transformers' and vLLM's name). Default: when
    the conversation ends with an assistant turn."""


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

    model_config = ConfigDict(extra="forbid", strict=True)

    input_string: Conversations
    """One conversation, or a list of conversations answered as a batch."""
    parameters: ScoreParameters = Field(default_factory=ScoreParameters)


class ScoreRequest(BaseModel):
    """Body of ``POST /score``."""

    model_config = ConfigDict(extra="forbid", strict=True)

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

    def continues(self, messages: list[Message]) -> bool:
        """Whether the answer continues the final (assistant) message of ``messages``."""
        p = self.input_data.parameters
        return continues_final(messages, p.add_generation_prompt, p.continue_final_message)


class TextPart(BaseModel):
    """One part of a message's content given as a list (only text parts are served)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    type: str
    text: str = ""


class ChatMessage(BaseModel):
    """One OpenAI message: string or text-part content; ``developer`` acts as ``system``."""

    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        """The content as one string (text parts joined by newlines)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """OpenAI ``stream_options``."""

    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False
    """Send a last chunk with ``usage`` and no choices."""


MAX_N = 8
MAX_TOP_LOGPROBS = 20
MAX_LOGIT_BIAS = 300
"""Most entries of ``logit_bias`` (OpenAI's own limit)."""
REFUSED = {
    "tools": "no tool calling",
    "tool_choice": "no tool calling",
    "parallel_tool_calls": "no tool calling",
    "functions": "no tool calling",
    "function_call": "no tool calling",
    "audio": "text answers only",
    "prediction": "no predicted outputs",
    "reasoning_effort": "the served models do not reason in a separate channel",
    "verbosity": "the served models have no verbosity control",
    "web_search_options": "no web search",
}
"""OpenAI fields no engine of chattune honours, and why: a 400 naming them, never ignored
(``null``, ``[]`` and ``{}`` are taken as absent, as the official client may send them)."""
METADATA = ("user", "metadata", "safety_identifier", "prompt_cache_key", "service_tier")
"""OpenAI fields accepted and not used: they label a request (for the caller's own records or
OpenAI's billing and caching) and never change the answer."""


class ChatCompletionRequest(BaseModel):
    """Body of ``POST /v1/chat/completions``: the OpenAI fields chattune honours.

    Every other field is a 400 naming it: the OpenAI fields no engine honours
    (:data:`REFUSED`, with the reason), a non-text ``response_format`` or ``modalities``,
    ``store: true``, and any unknown name. The labels in :data:`METADATA` are accepted and
    not used.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    """The endpoint, one of its deployments, or a served model (``NAME:VERSION``)."""
    messages: list[ChatMessage]
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    stop: str | list[str] | None = None
    """Up to 4 strings; the answer ends before the first one (which is not returned)."""
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    """OpenAI's int64 range: torch's generators take no wider seed (plus n-1 for n answers)."""
    n: int = Field(1, ge=1, le=MAX_N)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    logit_bias: dict[str, float] | None = None
    """Token id (a string of digits) to a bias from -100 to 100, added to the model's logits
    before sampling: -100 bans a token, 100 forces it."""
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    """Subtracted once from the logit of every token the answer already contains."""
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    """Subtracted from a token's logit once per time the answer already contains it."""
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    """vLLM's and transformers' extension: the logit of a token already in the prompt or the
    answer is divided by it (multiplied when negative); 1 is off, above 1 repeats less."""
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    """Only ``{"type": "text"}`` (the default)."""
    modalities: list[str] | None = None
    """Only ``["text"]``."""
    store: bool | None = None
    """Only false: chattune keeps no completions."""
    add_generation_prompt: bool | None = None
    """Start a new assistant turn (vLLM's extension). Default: yes, unless the conversation
    ends with an assistant turn, which is then continued."""
    continue_final_message: bool | None = None
    """Continue the final assistant message (vLLM's extension). Default: when the
    conversation ends with an assistant turn."""

    def stops(self) -> tuple[str, ...]:
        """The stop strings, as a tuple (empty when none)."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def biases(self) -> tuple[tuple[int, float], ...]:
        """``logit_bias`` as sorted ``(token id, bias)`` pairs (checked by the parser)."""
        return tuple(sorted((int(k), v) for k, v in (self.logit_bias or {}).items()))

    def conversation(self) -> list[Message]:
        """The messages as the project's conversation (``developer`` becomes ``system``)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]

    def continues(self) -> bool:
        """Whether the answer continues the final (assistant) message."""
        return continues_final(
            self.conversation(), self.add_generation_prompt, self.continue_final_message
        )


def continues_final(
    messages: list[Message], add_generation_prompt: bool | None, continue_final: bool | None
) -> bool:
    """Whether to continue the final message rather than start a new assistant turn: as the
    request says (either name), else when the conversation ends with an assistant turn.

    >>> continues_final([{"role": "user", "content": "a"}], None, None)
    False
    >>> continues_final([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    ...                 True, None)
    False
    """
    if continue_final is not None:
        return continue_final
    if add_generation_prompt is not None:
        return not add_generation_prompt
    return bool(messages) and messages[-1].get("role") == "assistant"


def _turn_problems(
    messages: list[Message], where: str, add: bool | None, cont: bool | None, prefix: str
) -> list[str]:
    """What is contradictory in how the request asks its answer to start."""
    if add is not None and cont is not None and add == cont:
        return [
            f"{prefix}add_generation_prompt and {prefix}continue_final_message are both "
            f"{str(add).lower()}: set one true (a new assistant turn, or the final message "
            "continued)"
        ]
    last = messages[-1].get("role") if messages else None
    if continues_final(messages, add, cont) and last != "assistant":
        name = "continue_final_message: true" if cont else "add_generation_prompt: false"
        return [f"{where}: {prefix}{name} needs a conversation that ends with an assistant turn"]
    return []


def _extra_problems(extra: dict[str, Any]) -> list[str]:
    """The fields of a chat request outside :class:`ChatCompletionRequest`, each refused."""
    problems = []
    for name, value in extra.items():
        if name in METADATA:
            continue
        if name in REFUSED:
            if value not in (None, [], {}):
                problems.append(f"{name}: not supported by chattune endpoints ({REFUSED[name]})")
            continue
        problems.append(f"{name}: unknown field; chattune endpoints honour no such parameter")
    return problems


def _chat_problems(request: ChatCompletionRequest) -> list[str]:
    """What a well-shaped chat request asks that the engine cannot do, each naming its field."""
    problems = _extra_problems(request.model_extra or {})
    kind = (request.response_format or {}).get("type", "text")
    if kind != "text":
        problems.append(f"response_format: only type 'text' is supported, got {kind!r}")
    if request.modalities not in (None, ["text"]):
        problems.append(f"modalities: only ['text'] is supported, got {request.modalities}")
    if request.store:
        problems.append("store: chattune endpoints keep no completions; remove it")
    problems += _bias_problems(request.logit_bias or {})
    stops = request.stops()
    if len(stops) > 4 or any(not s for s in stops):
        problems.append("stop: give up to 4 non-empty strings")
    if request.top_logprobs is not None and not request.logprobs:
        problems.append("top_logprobs: set logprobs to true to use it")
    if request.stream and request.n > 1:
        problems.append(f"n: streamed answers support n=1, got {request.n}")
    return problems + _part_problems(request.messages)


def _bias_problems(bias: dict[str, float]) -> list[str]:
    if len(bias) > MAX_LOGIT_BIAS:
        return [f"logit_bias: at most {MAX_LOGIT_BIAS} tokens, got {len(bias)}"]
    problems = [
        f"logit_bias: keys are token ids (digits), got {key!r}"
        for key in bias
        if not (key.isascii() and key.isdigit() and len(key) <= 9)
    ]
    problems += [
        f"logit_bias[{key!r}]: a bias from -100 to 100, got {value}"
        for key, value in bias.items()
        if not -100 <= value <= 100
    ]
    return problems


def _part_problems(messages: list[ChatMessage]) -> list[str]:
    """Content parts that are not text, each with its place."""
    return [
        f"messages[{i}].content[{j}].type: only 'text' parts are supported, got {part.type!r}"
        for i, message in enumerate(messages)
        if isinstance(message.content, list)
        for j, part in enumerate(message.content)
        if part.type != "text"
    ]


Model = TypeVar("Model", bound=BaseModel)


MAX_JSON_DEPTH = 32
"""Deepest nesting a request body may have (a conversation batch is 5 deep)."""


def parse_request(model: type[Model], body: bytes, invalid_status: int = 422) -> Model:
    """Parse and check a request body; every problem becomes one :class:`ApiError` (400 for
    bad JSON, ``invalid_status`` for a wrong shape or conversation: OpenAI answers 400)."""
    try:
        # JSON between systems is UTF-8 (RFC 8259 §8.1); json.loads would also guess UTF-16/32.
        data = json.loads(body.decode("utf-8"))
    except RecursionError:  # nesting deep enough to exhaust the parser's stack
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise _too_deep()
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    bad = invalid_text(data)
    if bad is not None:  # before any tokenizer sees it (it raises TypeError on these)
        where = bad[0].removeprefix("input_data.")
        raise ApiError(invalid_status, "invalid_request", surrogate_message(where, bad[1]))
    try:
        request = model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ApiError(invalid_status, "invalid_request", _describe(exc)) from None
    problems = _problems(request)
    if problems:
        raise ApiError(invalid_status, "invalid_request", "; ".join(problems))
    return request


def _too_deep() -> ApiError:
    return ApiError(
        400,
        "invalid_json",
        f"request body nests deeper than {MAX_JSON_DEPTH} levels; send a flat request",
    )


def _problems(request: BaseModel) -> list[str]:
    """Conversation rules broken by a well-shaped request, each naming where."""
    problems: list[str] = []
    if isinstance(request, ScoreRequest):
        p = request.input_data.parameters
        for i, messages in enumerate(request.conversations()):
            where = f"input_string[{i}]" if request.is_batch else "input_string"
            problems += _conversation_problems(messages, where) or _turn_problems(
                messages, where, p.add_generation_prompt, p.continue_final_message, "parameters."
            )
    elif isinstance(request, ChatCompletionRequest):
        problems += _chat_problems(request)
        if _part_problems(request.messages):  # the parts' own error; no "content: empty"
            return problems
        messages = request.conversation()
        problems += _conversation_problems(messages, "messages") or _turn_problems(
            messages, "messages", request.add_generation_prompt, request.continue_final_message, ""
        )
    return list(dict.fromkeys(problems))  # a batch repeats a contradiction once per row


def _conversation_problems(messages: list[Message], where: str) -> list[str]:
    """The serving rules (no assistant turn needed; the last turn is the user's, or the
    assistant's to be continued), located at ``where``."""
    found = validate_conversation(messages, require_assistant=False)
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
