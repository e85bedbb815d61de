"""Chat-template facts shared by training and serving, so both render a conversation alike."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chattune.data.schema import Message

_SENTINEL = "chattune-system-probe-7f3a"


def template_drops_system(tokenizer: Any) -> bool:
    """True when the tokenizer's chat template silently drops ``system`` messages (Phi-3)."""
    return _drops_system(tokenizer.chat_template or "", id(tokenizer), tokenizer)


@lru_cache(maxsize=16)
def _drops_system(template: str, _key: int, tokenizer: Any) -> bool:
    probe = [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    return _SENTINEL not in rendered


def fold_system(messages: list[Message]) -> list[Message]:
    """Prepend a leading system text to the first user turn (``system + "\\n\\n" + user``).

    This is what the reference pipeline does for templates that would drop the system
    message; the conversation keeps its instruction instead of losing it silently.
    """
    if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
        return messages
    merged = {"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
    return [merged, *messages[2:]]


def prepare_messages(tokenizer: Any, messages: list[Message]) -> list[Message]:
    """Messages as the model's template should see them (system folded in when dropped)."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    if plain and plain[0]["role"] == "system" and template_drops_system(tokenizer):
        return fold_system(plain)
    return plain
