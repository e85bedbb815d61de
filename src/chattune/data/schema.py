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

from chattune.errors import ValidationError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
RULES_HINT = (
    "each row needs `messages`: roles system/user/assistant, system only first, "
    "user and assistant alternating from user, non-empty text, at least one assistant turn"
)
MAX_SHOWN = 5


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


def validate_conversation(
    messages: Any, *, require_assistant: bool = True, require_user_last: bool = False
) -> list[str]:
    """Every rule that ``messages`` breaks, as ``"messages[3]: two user turns in a row"`` texts.

    An empty list means the conversation is valid. Training data uses the defaults; a
    serving-side check passes ``require_assistant=False, require_user_last=True``.

    >>> user, bot = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}
    >>> validate_conversation([user, bot])
    []
    >>> validate_conversation([user, user, bot])
    ['messages[1]: two user turns in a row']
    """
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        return [f"messages: expected a list of {{role, content}} objects, got {_kind(messages)}"]
    if not messages:
        return ["messages: empty conversation"]
    problems: list[str] = []
    previous: str | None = None  # role of the last user/assistant turn; "?" when unreadable
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(
                f"{where}: expected an object with role and content, got {_kind(message)}"
            )
            previous = "?"
            continue
        role = message.get("role")
        problems.extend(_content_problems(where, message))
        if role not in ROLES:
            got = "missing 'role'" if role is None else f"unknown role {role!r}"
            problems.append(f"{where}: {got} (expected system, user or assistant)")
            previous = "?"
        elif role == "system":
            if i > 0:
                problems.append(f"{where}: a system message may only come first")
        elif previous is None and role == "assistant":
            problems.append(f"{where}: the conversation must start with a user turn, got assistant")
            previous = role
        else:
            if role == previous:
                problems.append(f"{where}: two {role} turns in a row")
            previous = role
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if require_assistant and "assistant" not in roles:
        problems.append("messages: no assistant turn (training needs at least one)")
    if require_user_last and roles and roles[-1] != "user":
        last = len(messages) - 1
        problems.append(f"messages[{last}]: the conversation must end with a user turn")
    return problems


def _content_problems(where: str, message: dict[str, Any]) -> list[str]:
    if "content" not in message:
        return [f"{where}: missing 'content'"]
    content = message["content"]
    if not isinstance(content, str):
        return [f"{where}.content: expected a string, got {_kind(content)}"]
    if not content.strip():
        return [f"{where}.content: empty"]
    return []


def row_messages(row: Any) -> tuple[Any, str | None, str | None]:
    """``(messages, prompt, prompt_id)`` of a raw row: an ultrachat row or a bare message list.

    A row of neither shape returns it unchanged as ``messages`` so that validation names it.
    """
    if isinstance(row, dict) and "messages" in row:
        prompt, prompt_id = row.get("prompt"), row.get("prompt_id")
        return (
            row["messages"],
            prompt if isinstance(prompt, str) else None,
            prompt_id if isinstance(prompt_id, str) else None,
        )
    return row, None, None


def shape_problem(row: Any) -> str | None:
    """Why a raw row is neither an ultrachat row nor a bare message list, else None."""
    if isinstance(row, dict) and "messages" not in row:
        keys = ", ".join(sorted(map(str, row))[:6]) or "none"
        return f"no 'messages' field (got keys: {keys}); expected the ultrachat schema"
    return None


def clean(messages: list[dict[str, Any]]) -> list[Message]:
    """Just ``role`` and ``content`` of each (already valid) message."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
