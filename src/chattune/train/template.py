"""Loss masks from the model's own chat template.

The shipped templates (Phi-3, SmolLM2) carry no ``{% generation %}`` markers, so assistant
spans are found by rendering growing prefixes of the conversation and diffing the text: the
text added by rendering assistant turn *i* is exactly what the model must learn to produce
(its content and the end-of-turn token). Tokens are then labelled through offset mappings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chattune.data.chat import Message, prepare_messages
from chattune.errors import ValidationError

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One tokenized conversation: ``labels`` is ``IGNORE`` outside assistant tokens."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_target(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def assistant_char_spans(
    tokenizer: Any, messages: list[Message]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans the model must produce."""
    render = tokenizer.apply_chat_template
    text = render(messages, tokenize=False)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = render(messages[:i], tokenize=False, add_generation_prompt=True)
        through = render(messages[: i + 1], tokenize=False)
        if not through.startswith(before) or not text.startswith(through):
            raise ValidationError(
                "the chat template does not render conversations prefix by prefix",
                "use a model whose template renders each turn after the previous ones",
            )
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[Message], max_len: int | None = None
) -> Example:
    """Token ids and labels for one conversation, truncated to ``max_len`` tokens."""
    messages = prepare_messages(tokenizer, messages)
    text, spans = assistant_char_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        # A token belongs to a span if it starts inside it (offsets of special tokens too).
        if end > start and any(a <= start < b for a, b in spans):
            labels[t] = ids[t]
    if max_len is not None and max_len > 0:
        ids, labels = ids[:max_len], labels[:max_len]
    return Example(ids, labels)
