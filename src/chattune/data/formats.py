"""The row formats users bring, detected per file and converted to ``messages`` on read.

- ``messages`` — OpenAI / ultrachat_200k: ``{"messages": [{"role", "content", "weight"?}]}``
  (``prompt``, ``prompt_id`` kept), or a bare ``[{"role", "content"}, ...]`` list.
  ``"weight": 0`` on a turn means "do not train on it".
- ``sharegpt`` — LLaMA-Factory / Axolotl: ``{"conversations": [{"from", "value"}], "system"?}``
  with ``from`` human/gpt/system (``role_map`` overrides or extends the mapping).
- ``alpaca`` — ``{"instruction", "input"?, "output", "system"?, "history"?}``; ``history``
  is a list of ``[user, assistant]`` pairs before the instruction; ``instruction`` and a
  non-empty ``input`` are joined by a newline (as LLaMA-Factory does).
- ``prompt_completion`` — ``{"prompt", "completion"}``, one user and one assistant turn.

A file's format is that of its first row (or ``--from``); a later row of another shape is a
problem on its line, not a silent guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chattune.data.schema import Message, Problem

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion")
SHAREGPT_ROLES = {
    "human": "user",
    "gpt": "assistant",
    "system": "system",
    "user": "user",
    "assistant": "assistant",
}
_KEYS = {
    "messages": "messages",
    "sharegpt": "conversations",
    "alpaca": "instruction",
    "prompt_completion": "completion",
}


def detect(row: Any) -> str | None:
    """The format of one raw row, or None when it is none of them.

    >>> detect({"conversations": [{"from": "human", "value": "hi"}]})
    'sharegpt'
    >>> detect({"prompt": "hi", "completion": "yo"})
    'prompt_completion'
    """
    if isinstance(row, list):
        return "messages"
    if not isinstance(row, dict):
        return None
    for fmt in FORMATS:
        if _KEYS[fmt] in row:
            return fmt
    return None


def to_messages(
    row: Any, fmt: str, role_map: Mapping[str, str] | None = None
) -> tuple[Any, list[Problem]]:
    """``(messages, problems)`` of a raw row read as ``fmt``.

    The messages are not validated here (the one validator does that); the problems are
    those of the row's own shape, named with the row's own field names.

    >>> to_messages({"instruction": "Add", "input": "1 2", "output": "3"}, "alpaca")[0][0]
    {'role': 'user', 'content': 'Add\\n1 2'}
    """
    if fmt == "messages" and isinstance(row, list):
        return row, []
    if not isinstance(row, dict) or _KEYS[fmt] not in row:
        return None, [_wrong_shape(row, fmt)]
    if fmt == "messages":
        return row["messages"], []
    if fmt == "sharegpt":
        return _from_sharegpt(row, {**SHAREGPT_ROLES, **(role_map or {})})
    if fmt == "alpaca":
        return _from_alpaca(row)
    return _from_prompt_completion(row)


def _wrong_shape(row: Any, fmt: str) -> Problem:
    if isinstance(row, dict):
        keys = ", ".join(sorted(map(str, row))[:6]) or "none"
        got = f"got keys: {keys}"
    else:
        got = f"got {'null' if row is None else type(row).__name__}"
    text = f"no '{_KEYS[fmt]}' field ({got}); this file's rows are {fmt} (--from to choose)"
    return Problem("wrong_shape", "", text)


def _system(row: dict[str, Any], problems: list[Problem]) -> list[Message]:
    system = row.get("system")
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        problems.append(Problem("bad_field", "system", "expected a string"))
        return []
    return [{"role": "system", "content": system}]


def _from_sharegpt(row: dict[str, Any], roles: Mapping[str, str]) -> tuple[Any, list[Problem]]:
    turns = row["conversations"]
    problems: list[Problem] = []
    if not isinstance(turns, list):
        return turns, problems
    messages: list[Any] = _system(row, problems)
    for turn in turns:
        if not isinstance(turn, dict):
            messages.append(turn)
            continue
        who = turn.get("from")
        message = {"role": roles.get(who, who) if isinstance(who, str) else who}
        if "value" in turn:
            message["content"] = turn["value"]
        if "weight" in turn:
            message["weight"] = turn["weight"]
        messages.append(message)
    return messages, problems


def _from_alpaca(row: dict[str, Any]) -> tuple[Any, list[Problem]]:
    problems: list[Problem] = []
    messages: list[Any] = _system(row, problems)
    history = row.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in history
    ):
        text = "expected a list of [user, assistant] pairs"
        problems.append(Problem("bad_field", "history", text))
        history = []
    for user, assistant in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    instruction, extra = row.get("instruction"), row.get("input")
    if not isinstance(instruction, str):
        problems.append(Problem("bad_field", "instruction", "expected a string"))
        instruction = ""
    if extra is not None and not isinstance(extra, str):
        problems.append(Problem("bad_field", "input", "expected a string"))
        extra = None
    query = f"{instruction}\n{extra}" if extra else instruction
    messages.append({"role": "user", "content": query})
    messages.append({"role": "assistant", "content": row.get("output")})
    return messages, problems


def _from_prompt_completion(row: dict[str, Any]) -> tuple[Any, list[Problem]]:
    problems: list[Problem] = []
    messages = _system(row, problems)
    messages.append({"role": "user", "content": row.get("prompt")})
    messages.append({"role": "assistant", "content": row.get("completion")})
    return messages, problems


def from_messages(messages: list[Message], fmt: str) -> Any:
    """A valid conversation written as a ``fmt`` row (the inverse of :func:`to_messages`).

    For ``alpaca`` the last turn must be an assistant answer; the last user text goes to
    ``instruction`` (up to its first newline) and ``input`` (the rest).

    >>> from_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    ...               "prompt_completion")
    {'prompt': 'hi', 'completion': 'yo'}
    """
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    turns = messages[1:] if system is not None else messages
    head = {"system": system} if system is not None else {}
    if fmt == "messages":
        return {"messages": messages}
    if fmt == "sharegpt":
        back = {v: k for k, v in SHAREGPT_ROLES.items() if k in ("human", "gpt")}
        convs = [{"from": back[m["role"]], "value": m["content"]} for m in turns]
        return {**head, "conversations": convs}
    *earlier, (question, answer) = [
        (turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns), 2)
    ]
    if fmt == "prompt_completion":
        return {**head, "prompt": question, "completion": answer}
    instruction, _, extra = question.partition("\n")
    row = {**head, "instruction": instruction, "input": extra, "output": answer}
    return {**row, "history": [list(p) for p in earlier]} if earlier else row
