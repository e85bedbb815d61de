"""Preference rows (DPO data): a prompt, a chosen answer and a rejected answer.

The shapes users bring, detected like the chat formats (:mod:`chattune.data.formats`):

- ``ultrafeedback_binarized`` — HuggingFaceH4/ultrafeedback_binarized and TRL's
  conversational shape: ``chosen`` and ``rejected`` are message lists. Either both hold the
  whole conversation (they share every turn but the last, which is the answer; ``prompt``
  is then the first user text), or ``prompt`` is the message list and each of ``chosen`` /
  ``rejected`` is one assistant message.
- ``prompt_chosen_rejected`` — plain strings: ``{"prompt", "chosen", "rejected", "system"?}``.
- ``sharegpt_dpo`` — LLaMA-Factory's: ``{"conversations": [{"from", "value"}], "chosen":
  {"from": "gpt", "value"}, "rejected": {...}, "system"?}``.

Each row becomes a :class:`PreferencePair`; what is wrong is a list of problems named with
the row's own fields (``chosen.content: empty``), all of them, never the first only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chattune.data.schema import Message, Problem, clean, conversation_problems

SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
"""LLaMA-Factory's ShareGPT speakers (``role_map`` extends them); role names pass as they are."""
PREFERENCE_FORMATS = ("ultrafeedback_binarized", "prompt_chosen_rejected", "sharegpt_dpo")


@dataclass(frozen=True)
class PreferencePair:
    """One valid preference row: the prompt (ends with a user turn) and the two answers.

    >>> pair = PreferencePair([{"role": "user", "content": "2+2?"}],
    ...     {"role": "assistant", "content": "4"}, {"role": "assistant", "content": "5"})
    >>> pair.conversation("chosen")[-1]["content"]
    '4'
    """

    prompt: list[Message]
    chosen: Message
    rejected: Message
    where: str = ""

    def conversation(self, side: str) -> list[Message]:
        """The prompt followed by the ``chosen`` or ``rejected`` answer."""
        return [*self.prompt, self.chosen if side == "chosen" else self.rejected]


def detect(row: Any) -> str | None:
    """The preference format of a raw row, or None when it holds no chosen/rejected pair.

    >>> detect({"prompt": "hi", "chosen": "yo", "rejected": "go away"})
    'prompt_chosen_rejected'
    """
    if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
        return None
    if "conversations" in row:
        return "sharegpt_dpo"
    if isinstance(row["chosen"], list) or isinstance(row.get("prompt"), list):
        return "ultrafeedback_binarized"
    return "prompt_chosen_rejected"


def to_pair(
    row: Any, fmt: str, role_map: Mapping[str, str] | None = None
) -> tuple[PreferencePair | None, list[Problem]]:
    """``(pair, problems)`` of a raw row read as ``fmt``; the pair is None when any problem
    is an error."""
    if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
        keys = ", ".join(sorted(map(str, row))[:6]) if isinstance(row, dict) else "none"
        text = f"no 'chosen' and 'rejected' fields (got keys: {keys}); this file is {fmt}"
        return None, [Problem("wrong_shape", "", text)]
    if fmt == "sharegpt_dpo":
        parts = _from_sharegpt(row, role_map)
    elif fmt == "ultrafeedback_binarized":
        parts = _from_ultrafeedback(row)
    else:
        parts = _from_strings(row)
    prompt, prompt_field, chosen, rejected, problems = parts
    if prompt is None:  # the row's shape is wrong: nothing more to check
        return None, problems
    problems += _prompt_problems(prompt, prompt_field)
    problems += _answer_problems(chosen, "chosen") + _answer_problems(rejected, "rejected")
    if _text(chosen) is not None and _text(chosen) == _text(rejected):
        problems.append(Problem("same_answer", "chosen", "chosen and rejected are the same text"))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return PreferencePair(clean(prompt), clean([chosen])[0], clean([rejected])[0]), problems


Parts = tuple[Any, str, Any, Any, list[Problem]]
"""prompt messages, the field they came from, chosen, rejected, problems of the shape."""


def _system(row: dict[str, Any], problems: list[Problem]) -> list[Message]:
    system = row.get("system")
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        problems.append(Problem("bad_field", "system", "expected a string"))
        return []
    return [{"role": "system", "content": system}]


def _from_strings(row: dict[str, Any]) -> Parts:
    problems: list[Problem] = []
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        got = "missing" if prompt is None else f"expected a string, got {type(prompt).__name__}"
        problems.append(Problem("bad_field", "prompt", got))
    messages = [*_system(row, problems), {"role": "user", "content": prompt or "x"}]
    answers = [
        {"role": "assistant", "content": row[side]} if isinstance(row[side], str) else row[side]
        for side in ("chosen", "rejected")
    ]
    return messages, "prompt", answers[0], answers[1], problems


def _from_sharegpt(row: dict[str, Any], role_map: Mapping[str, str] | None) -> Parts:
    roles = {**SHAREGPT_ROLES, **(role_map or {})}
    problems: list[Problem] = []
    turns = row["conversations"]
    if not isinstance(turns, list):
        return turns, "conversations", row["chosen"], row["rejected"], problems
    messages = [*_system(row, problems), *(_sharegpt_turn(t, roles) for t in turns)]
    answers = [_sharegpt_turn(row[side], roles) for side in ("chosen", "rejected")]
    return messages, "conversations", answers[0], answers[1], problems


def _sharegpt_turn(turn: Any, roles: Mapping[str, str]) -> Any:
    if not isinstance(turn, dict):
        return turn
    who = turn.get("from")
    out = {"role": roles.get(who, who) if isinstance(who, str) else who}
    if "value" in turn:
        out["content"] = turn["value"]
    return out


def _from_ultrafeedback(row: dict[str, Any]) -> Parts:
    problems: list[Problem] = []
    chosen, rejected, prompt = row["chosen"], row["rejected"], row.get("prompt")
    for side, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, list) or not value:
            what = "an empty list" if value == [] else type(value).__name__
            problems.append(Problem("bad_field", side, f"expected a message list, got {what}"))
    if problems:
        return None, "prompt", None, None, problems
    if isinstance(prompt, list):  # TRL conversational: the prompt apart, one answer each
        for side, value in (("chosen", chosen), ("rejected", rejected)):
            if len(value) != 1:
                text = f"expected one assistant message after a list prompt, got {len(value)}"
                problems.append(Problem("bad_field", side, text))
        return prompt, "prompt", chosen[-1], rejected[-1], problems
    if chosen[:-1] != rejected[:-1]:
        text = "chosen and rejected differ before their last message (they share the prompt)"
        problems.append(Problem("different_prompts", "rejected", text))
    messages = chosen[:-1]
    if not messages and isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    return messages, "chosen", chosen[-1], rejected[-1], problems


def _prompt_problems(prompt: Any, name: str) -> list[Problem]:
    found = conversation_problems(prompt, require_assistant=False, require_user_last=True)
    out = []
    for p in found:
        text = p.message
        if p.kind == "not_user_last":
            text = "the prompt must end with a user turn (the answers follow it)"
        out.append(Problem(p.kind, p.field.replace("messages", name, 1), text, p.severity))
    return out


def _answer_problems(answer: Any, side: str) -> list[Problem]:
    if not isinstance(answer, dict):
        got = "null" if answer is None else type(answer).__name__
        return [Problem("bad_answer", side, f"expected an assistant message, got {got}")]
    problems = []
    role = answer.get("role")
    if role != "assistant":
        text = f"expected an assistant answer, got role {role!r}"
        problems.append(Problem("answer_not_assistant", side, text))
    content = answer.get("content")
    if not isinstance(content, str):
        got = "missing" if content is None else f"expected a string, got {type(content).__name__}"
        problems.append(Problem("content_not_text", f"{side}.content", got))
    elif not content.strip():
        problems.append(Problem("empty_content", f"{side}.content", "empty"))
    return problems


def _text(answer: Any) -> str | None:
    return answer.get("content") if isinstance(answer, dict) else None
