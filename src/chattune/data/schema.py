"""The conversation schema every part of chattune agrees on, and its rules.

A conversation is a list of ``{"role", "content"}`` messages (the ultrachat_200k ``messages``
column). The rules, checked by :func:`validate_conversation`:

- roles are ``system``, ``user`` or ``assistant``;
- a ``system`` message may only come first;
- after it, ``user`` and ``assistant`` alternate, starting with ``user``;
- every ``content`` is a non-empty string;
- training data needs at least one ``assistant`` turn (preprocess computes the loss on
  assistant tokens only); a request to a served model instead ends with a ``user`` turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chattune.data.text import lone_surrogate, surrogate_message
from chattune.errors import ValidationError

Message = dict[str, Any]
"""``{"role", "content"}``, plus ``"weight": 0`` on a turn not to be trained on."""
ROLES = ("system", "user", "assistant")
RULES_HINT = (
    "each row needs `messages`: roles system/user/assistant, system only first, "
    "user and assistant alternating from user, non-empty text, at least one assistant turn"
)
MAX_SHOWN = 5
MAX_ROW_PROBLEMS = 20
"""Problems listed for one row before the rest of its messages are skipped."""


@dataclass(frozen=True)
class Conversation:
    """One validated row: its messages, the ultrachat ids when present, and where it came from.

    >>> c = Conversation([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    >>> c.messages[-1]["role"]
    'assistant'
    """

    messages: list[Message]
    prompt: str | None = None
    prompt_id: str | None = None
    where: str = field(default="", compare=False)


class DataValidationError(ValidationError):
    """A data file broke the rules; ``problems`` lists every one, the message the first few."""

    def __init__(self, problems: list[str], hint: str = RULES_HINT) -> None:
        shown = "; ".join(problems[:MAX_SHOWN])
        more = len(problems) - MAX_SHOWN
        message = f"{shown}; and {more} more problems" if more > 0 else shown
        super().__init__(message, hint)
        self.problems = problems


class UnreadableDataError(ValidationError):
    """The input cannot be read as data at all (type, encoding of a whole file, layout).

    Its own exit code (2) tells "fix the file you passed" from "fix these rows" (3).
    """

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One broken rule of one row: where (``field``), what (``message``), its ``kind``.

    ``severity`` is ``"error"`` (the row is rejected) or ``"warning"`` (kept, but the user
    should know). ``text`` is what the CLI prints after the row's place.

    >>> Problem("two_in_a_row", "messages[1]", "two user turns in a row").text
    'messages[1]: two user turns in a row'
    """

    kind: str
    field: str
    message: str
    severity: str = "error"

    @property
    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def validate_conversation(
    messages: Any, *, require_assistant: bool = True, require_user_last: bool = False
) -> list[str]:
    """Every rule that ``messages`` breaks, as ``"messages[3]: two user turns in a row"`` texts.

    An empty list means the conversation is valid (warnings are not listed). Training data
    uses the defaults; a serving-side check passes
    ``require_assistant=False, require_user_last=True``.

    >>> user, bot = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}
    >>> validate_conversation([user, bot])
    []
    >>> validate_conversation([user, user, bot])
    ['messages[1]: two user turns in a row']
    """
    found = conversation_problems(
        messages, require_assistant=require_assistant, require_user_last=require_user_last
    )
    return [p.text for p in found if p.severity == "error"]


def conversation_problems(
    messages: Any, *, require_assistant: bool = True, require_user_last: bool = False
) -> list[Problem]:
    """:func:`validate_conversation` with kinds and warnings: what ``data validate`` reports.

    A training conversation (``require_assistant``) that ends in a user turn after an
    assistant turn gets a ``trailing_user`` warning: that last turn is never trained on.
    """
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        got = f"expected a list of {{role, content}} objects, got {_kind(messages)}"
        return [Problem("not_a_list", "messages", got)]
    if not messages:
        return [Problem("empty_conversation", "messages", "empty conversation")]
    problems: list[Problem] = []
    previous: str | None = None  # role of the last user/assistant turn; "?" when unreadable
    for i, message in enumerate(messages):
        previous = _message_problems(f"messages[{i}]", i, message, previous, problems)
        if len(problems) >= MAX_ROW_PROBLEMS and i + 1 < len(messages):
            # A row of millions of broken messages must not cost a Problem each.
            text = f"{len(messages) - i - 1} more messages not checked"
            problems.append(Problem("too_many_problems", f"messages[{i + 1}:]", text))
            break
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    last = len(messages) - 1
    if require_assistant and "assistant" not in roles:
        text = "no assistant turn (training needs at least one)"
        problems.append(Problem("no_assistant", "messages", text))
    elif require_assistant and roles and roles[-1] == "user":
        text = "a user turn after the last assistant turn is never trained on"
        problems.append(Problem("trailing_user", f"messages[{last}]", text, "warning"))
    if require_user_last and roles and roles[-1] != "user":
        text = "the conversation must end with a user turn"
        problems.append(Problem("not_user_last", f"messages[{last}]", text))
    return problems


def _message_problems(
    where: str, i: int, message: Any, previous: str | None, problems: list[Problem]
) -> str | None:
    """Append the problems of message ``i``; the role the next message must differ from."""
    if not isinstance(message, dict):
        got = f"expected an object with role and content, got {_kind(message)}"
        problems.append(Problem("bad_message", where, got))
        return "?"
    role = message.get("role")
    problems.extend(_content_problems(where, message))
    weight = message.get("weight", 1)
    if isinstance(weight, bool) or weight not in (0, 1):
        got = f"expected 0 or 1, got {message['weight']!r}"
        problems.append(Problem("bad_weight", f"{where}.weight", got))
    if role not in ROLES:
        got = "missing 'role'" if role is None else f"unknown role {role!r}"
        problems.append(
            Problem("unknown_role", where, f"{got} (expected system, user or assistant)")
        )
        return "?"
    if role == "system":
        if i > 0:
            problems.append(
                Problem("system_not_first", where, "a system message may only come first")
            )
        return previous
    if previous is None and role == "assistant":
        text = "the conversation must start with a user turn, got assistant"
        problems.append(Problem("starts_with_assistant", where, text))
    elif role == previous:
        problems.append(Problem("two_in_a_row", where, f"two {role} turns in a row"))
    return role


def _content_problems(where: str, message: dict[str, Any]) -> list[Problem]:
    if "content" not in message:
        return [Problem("missing_content", where, "missing 'content'")]
    content = message["content"]
    if not isinstance(content, str):
        got = f"expected a string, got {_kind(content)}"
        return [Problem("content_not_text", f"{where}.content", got)]
    if not content.strip():
        return [Problem("empty_content", f"{where}.content", "empty")]
    at = lone_surrogate(content)
    if at is not None:
        text = surrogate_message("", at).removeprefix(": ")
        return [Problem("invalid_text", f"{where}.content", text)]
    return []


def clean(messages: list[dict[str, Any]]) -> list[Message]:
    """Just ``role`` and ``content`` of each (already valid) message, and ``weight: 0`` where
    a message is not to be trained on (1, the default, is left out)."""
    return [
        {
            "role": m["role"],
            "content": m["content"],
            **({"weight": 0} if m.get("weight") == 0 else {}),
        }
        for m in messages
    ]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
