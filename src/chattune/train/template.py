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
    """Token ids and labels for one conversation, truncated to ``max_len`` tokens.

    An assistant turn with ``"weight": 0`` stays in the context but is not trained on.
    """
    return tokenize_batch(tokenizer, [messages], max_len)[0]


def tokenize_batch(
    tokenizer: Any, conversations: list[list[Message]], max_len: int | None = None
) -> list[Example]:
    """:func:`tokenize_conversation` for many: one call to the tokenizer's batch API."""
    return [ex for ex, _ in tokenize_truncated(tokenizer, conversations, max_len)]


CHARS_PER_TOKEN_GUESSES = (4, 8)
"""Prefixes tokenized first: ``max_len`` times this many characters (English needs ~4)."""
MARGIN = 16
"""Tokens past ``max_len`` that must come out of a cut text for its cut to be trusted
(a cut can only change the tokens right before it)."""


def tokenize_truncated(
    tokenizer: Any, conversations: list[list[Message]], max_len: int | None
) -> list[tuple[Example, bool]]:
    """``(example, truncated)`` per conversation, examples cut to ``max_len`` tokens.

    Tokenizing costs more than linear time in the text's length (Phi-3's tokenizer merges a
    whole text as one word), so with ``max_len`` only a prefix of each rendered text is
    tokenized: ``max_len`` times 4 characters, then 8, then all of it, each step only for
    the rows whose prefix gave fewer than ``max_len + 16`` tokens. So the first ``max_len``
    tokens are those of the full text.
    """
    texts, all_spans = [], []
    for messages in conversations:
        trained = [m.get("weight", 1) != 0 for m in messages if m["role"] == "assistant"]
        text, spans = assistant_char_spans(tokenizer, prepare_messages(tokenizer, messages))
        texts.append(text)
        all_spans.append([s for s, keep in zip(spans, trained, strict=True) if keep])
    encoded = _encode_prefixes(tokenizer, texts, max_len)
    out = []
    for (ids, offsets), spans in zip(encoded, all_spans, strict=True):
        truncated = max_len is not None and max_len > 0 and len(ids) > max_len
        if truncated:
            ids, offsets = ids[:max_len], offsets[:max_len]
        out.append((_labelled(ids, offsets, spans), truncated))
    return out


Encoded = tuple[list[int], list[tuple[int, int]]]


def _encode_prefixes(tokenizer: Any, texts: list[str], max_len: int | None) -> list[Encoded]:
    """Token ids and offsets of each text, exact for its first ``max_len`` tokens."""
    encoded: list[Encoded | None] = [None] * len(texts)
    todo = list(range(len(texts)))
    guesses = CHARS_PER_TOKEN_GUESSES if max_len and max_len > 0 else ()
    for guess in (*guesses, None):
        limit = max_len * guess if guess and max_len else None
        pairs = _encode(tokenizer, [texts[i][:limit] if limit else texts[i] for i in todo])
        retry = []
        for i, pair in zip(todo, pairs, strict=True):
            cut_short = limit is not None and len(texts[i]) > limit
            if cut_short and len(pair[0]) < max_len + MARGIN:  # type: ignore[operator]
                retry.append(i)
            else:
                encoded[i] = pair
        todo = retry
        if not todo:
            break
    return [e for e in encoded if e is not None]


def _encode(tokenizer: Any, texts: list[str]) -> list[Encoded]:
    """Ids and offsets through the Rust tokenizer's batch API (the transformers wrapper
    around it costs as much again), or the wrapper for a tokenizer without one."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [(e.ids, e.offsets) for e in backend.encode_batch(texts, add_special_tokens=False)]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return list(zip(enc["input_ids"], enc["offset_mapping"], strict=True))


def _labelled(
    ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> Example:
    """Label the tokens that start inside a span (offsets of special tokens too)."""
    labels = [IGNORE] * len(ids)
    k = 0  # spans and token offsets both ascend: one sweep
    for t, (start, end) in enumerate(offsets):
        while k < len(spans) and spans[k][1] <= start:
            k += 1
        if k == len(spans):
            break
        if end > start and spans[k][0] <= start:
            labels[t] = ids[t]
    return Example(list(ids), labels)


def max_token_chars(tokenizer: Any) -> int:
    """The most characters one vocabulary entry can stand for (at least 1).

    Byte-level entries are counted in their byte characters, which is never fewer than the
    text characters they cover, so the bound is safe for every tokenizer kind.
    """
    longest = max((len(token) for token in tokenizer.get_vocab()), default=1)
    return max(longest, 1)


def bound_messages(messages: list[Message], max_chars: int) -> tuple[list[Message], bool]:
    """Cut ``messages`` to what can still fall inside the first ``max_len`` tokens.

    ``max_chars`` is ``max_len * max_token_chars``: text past it needs more than ``max_len``
    tokens to reach, so truncation would drop it anyway. Cutting first keeps a 50 MB row
    from ever being rendered or tokenized whole. Returns the messages and whether any were cut.
    """
    out: list[Message] = []
    budget = max_chars
    for message in messages:
        if budget <= 0:
            return out, True  # everything after this lies past max_len
        content = message["content"]
        if len(content) > budget:
            out.append({**message, "content": content[:budget]})
            return out, True
        out.append(message)
        budget -= len(content)
    return out, False
