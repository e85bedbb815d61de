"""Convert LLaMA-Factory demo data formats into ultrachat_200k rows.

An ultrachat row is ``{"prompt", "prompt_id", "messages"}``: ``prompt`` is the first user
text, ``prompt_id`` its sha256 hex digest, ``messages`` the ``{"content", "role"}`` turns.
Each converter maps one source row to ``messages`` (or ``None`` when the row is not usable);
:func:`to_row` adds the ids. Rows that break the conversation rules are dropped later, in one
place (:func:`chattune.data.sample.build_ultrachat_sample`).

Choices, each faithful to where the data came from:

- ``kto_en_demo``: only rows with ``label: true`` (KTO's "desirable" answers); ``false``
  rows are answers the dataset marks as bad, which a supervised run must not imitate.
- ``dpo_en_demo``: the conversation plus the ``chosen`` answer (``rejected`` is dropped);
  a leading ``system`` turn is kept.
- ``glaive_toolcall_en_demo``: mapped to the upstream glaive-function-calling-v2 text
  convention so the chat stays user/assistant alternating: the ``tools`` list becomes a
  system message ("You are a helpful assistant with access to the following functions..."),
  ``function_call`` an assistant turn ``<functioncall> {json}``, ``observation`` a user turn
  ``FUNCTION RESPONSE: {json}``.
- ``alpaca_en_demo``: ``instruction`` and ``input`` joined by a newline (as LLaMA-Factory's
  alpaca converter does) → user, ``output`` → assistant.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chattune.data.schema import Message

SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
TOOLS_SYSTEM = (
    "You are a helpful assistant with access to the following functions. Use them if required -\n"
)


def prompt_id(prompt: str) -> str:
    """sha256 hex digest of the prompt text, as ultrachat_200k's ``prompt_id``.

    >>> prompt_id("hi")[:12]
    '8f434346648f'
    """
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def to_row(messages: list[Message]) -> dict[str, Any]:
    """An ultrachat row for ``messages`` (prompt = first user text, "" when there is none).

    >>> row = to_row([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    >>> row["prompt"], row["prompt_id"][:8]
    ('hi', '8f434346')
    """
    prompt = next((m["content"] for m in messages if m.get("role") == "user"), "")
    return {
        "prompt": prompt,
        "prompt_id": prompt_id(prompt),
        "messages": [{"content": m["content"], "role": m["role"]} for m in messages],
    }


def from_kto(row: dict[str, Any]) -> list[Message] | None:
    """``{"messages": [{role, content}], "label": bool}`` → messages, desirable rows only."""
    if row.get("label") is not True:
        return None
    return _plain(
        row.get("messages"),
        "role",
        "content",
        {"user": "user", "assistant": "assistant", "system": "system"},
    )


def from_dpo(row: dict[str, Any]) -> list[Message] | None:
    """ShareGPT ``conversations`` + the ``chosen`` answer → messages."""
    turns = row.get("conversations")
    chosen = row.get("chosen")
    if not isinstance(turns, list) or not isinstance(chosen, dict):
        return None
    return _plain([*turns, chosen], "from", "value", SHAREGPT_ROLES)


def from_glaive(row: dict[str, Any]) -> list[Message] | None:
    """ShareGPT tool-calling conversation → messages in the glaive text convention."""
    turns = row.get("conversations")
    if not isinstance(turns, list):
        return None
    roles = {**SHAREGPT_ROLES, "function_call": "assistant", "observation": "user"}
    messages = _plain(turns, "from", "value", roles)
    if messages is None:
        return None
    for turn, message in zip(turns, messages, strict=True):
        if turn["from"] == "function_call":
            message["content"] = f"<functioncall> {message['content']}"
        elif turn["from"] == "observation":
            message["content"] = f"FUNCTION RESPONSE: {message['content']}"
    tools = row.get("tools")
    if isinstance(tools, str) and tools.strip() not in ("", "[]"):
        messages.insert(0, {"role": "system", "content": TOOLS_SYSTEM + tools})
    return messages


def from_alpaca(row: dict[str, Any]) -> list[Message] | None:
    """``instruction`` (+ ``input``) → user, ``output`` → assistant."""
    instruction, extra, output = row.get("instruction"), row.get("input"), row.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        return None
    query = f"{instruction}\n{extra}" if isinstance(extra, str) and extra else instruction
    return [{"role": "user", "content": query}, {"role": "assistant", "content": output}]


def _plain(
    turns: Any, role_key: str, content_key: str, roles: dict[str, str]
) -> list[Message] | None:
    if not isinstance(turns, list):
        return None
    messages: list[Message] = []
    for turn in turns:
        if not isinstance(turn, dict) or turn.get(role_key) not in roles:
            return None
        content = turn.get(content_key)
        if not isinstance(content, str):
            return None
        messages.append({"role": roles[turn[role_key]], "content": content})
    return messages
