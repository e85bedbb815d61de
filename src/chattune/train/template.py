"""Loss masks from the model's own chat template.

The shipped templates (Phi-3, SmolLM2) carry no ``{% generation %}`` markers, so assistant
spans are found by rendering growing prefixes of the conversation and diffing the text: the
text added by rendering assistant turn *i* is exactly what the model must learn to produce
(its content and the end-of-turn token). Tokens are then labelled through offset mappings.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
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
    tokenizer: Any, messages: list[Message], text: str | None = None, stop: int | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans the model must produce.

    ``text`` is the conversation already rendered; spans that would start at or after
    character ``stop`` (past the truncation) are not looked for, which saves rendering the
    later turns of a long conversation.
    """
    render = renderer(tokenizer)
    if text is None:
        text = render(messages, False)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = render(messages[:i], True)
        if stop is not None and len(before) >= stop:
            break
        through = render(messages[: i + 1], False)
        if not through.startswith(before) or not text.startswith(through):
            raise ValidationError(
                "the chat template does not render conversations prefix by prefix",
                "use a model whose template renders each turn after the previous ones",
            )
        spans.append((len(before), len(through)))
    return text, spans


Render = Callable[[list[Message], bool], str]
"""``render(messages, add_generation_prompt)``: the chat template's text."""
_PROBE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "Bye."},
]


def renderer(tokenizer: Any) -> Render:
    """The tokenizer's chat template as a function, rendered straight by its compiled jinja
    template when that gives exactly what ``apply_chat_template`` gives on a probe
    conversation (``apply_chat_template`` copies and normalizes every message on each call,
    which is most of the time of rendering the prefixes of a conversation); else
    ``apply_chat_template`` itself.
    """
    return _renderer(tokenizer.chat_template or "", id(tokenizer), tokenizer)


@lru_cache(maxsize=16)
def _renderer(template: str, _key: int, tokenizer: Any) -> Render:
    def slow(messages: list[Message], generation: bool) -> str:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation
        )

    try:  # transformers' own compiled template (a private helper, hence the probe below)
        from transformers.utils.chat_template_utils import _compile_jinja_template

        compiled = _compile_jinja_template(tokenizer.get_chat_template())
        extra = dict(tokenizer.special_tokens_map)
    except Exception:  # any other tokenizer, or a transformers without the helper
        return slow

    def fast(messages: list[Message], generation: bool) -> str:
        return compiled.render(
            messages=messages, tools=None, documents=None, add_generation_prompt=generation, **extra
        )

    try:
        same = all(
            fast(_PROBE[a:b], g) == slow(_PROBE[a:b], g)
            for a in (0, 1)
            for b in (2, 3, 4, 5)
            for g in (False, True)
        )
    except Exception:
        same = False
    return fast if same else slow


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


CHARS_PER_TOKEN_GUESS = 5
"""The first prefix tokenized is ``max_len`` times this many characters (English text gives
about 4 per token, so most long rows need no second try)."""
MARGIN = 16
"""Tokens past ``max_len`` that must come out of a cut text for its cut to be trusted
(a cut can only change the tokens right before it)."""


def tokenize_truncated(
    tokenizer: Any, conversations: list[list[Message]], max_len: int | None
) -> list[tuple[Example, bool]]:
    """``(example, truncated)`` per conversation, examples cut to ``max_len`` tokens.

    The work follows ``max_len``, not the conversation's length: each conversation is
    rendered once, only a prefix of the text is tokenized (``max_len`` times 5 characters;
    a row whose prefix gave fewer than ``max_len + 16`` tokens is tried again with a prefix
    sized from the characters per token it showed, until the first ``max_len`` tokens are
    those of the full text), and assistant spans are looked for only up to the last kept
    token.
    """
    prepared = [prepare_messages(tokenizer, messages) for messages in conversations]
    render = renderer(tokenizer)
    texts = [render(p, False) for p in prepared]
    out = []
    for messages, p, text, (ids, offsets, length) in zip(
        conversations, prepared, texts, _encode_prefixes(tokenizer, texts, max_len), strict=True
    ):
        truncated = max_len is not None and 0 < max_len < length
        stop = max((end for _, end in offsets), default=0) if truncated else None
        _, spans = assistant_char_spans(tokenizer, p, text=text, stop=stop)
        trained = [m.get("weight", 1) != 0 for m in messages if m["role"] == "assistant"]
        spans = [s for s, keep in zip(spans, trained, strict=False) if keep]
        out.append((_labelled(ids, offsets, spans), truncated))
    return out


Encoded = tuple[list[int], list[tuple[int, int]], int]
"""Token ids and offsets (cut to ``max_len``) and how many tokens the text gave."""


def _encode_prefixes(tokenizer: Any, texts: list[str], max_len: int | None) -> list[Encoded]:
    """Token ids and offsets of each text, exact for its first ``max_len`` tokens."""
    encoded: list[Encoded | None] = [None] * len(texts)
    cap = None if max_len is None or max_len <= 0 else max_len  # None: the whole text
    guess = None if cap is None else cap * CHARS_PER_TOKEN_GUESS
    limits: dict[int, int | None] = dict.fromkeys(range(len(texts)), guess)
    while limits:
        todo = list(limits)
        pieces = [texts[i][: limits[i]] if limits[i] else texts[i] for i in todo]
        for i, enc in zip(todo, _encode(tokenizer, pieces, max_len), strict=True):
            limit = limits.pop(i)
            if limit is None or cap is None or len(texts[i]) <= limit or enc[2] >= cap + MARGIN:
                encoded[i] = enc
            else:  # too few tokens in the prefix: a longer one, sized by what this one gave
                want = (cap + MARGIN) * limit / max(enc[2], 1)
                limits[i] = max(int(want * 1.2), limit * 5 // 4)  # grows: it ends
    return [e for e in encoded if e is not None]


def _encode(tokenizer: Any, texts: list[str], max_len: int | None) -> list[Encoded]:
    """Through the Rust tokenizer's batch API when there is one: the transformers wrapper
    around it costs as much again, and a Rust encoding is cut before it becomes lists."""
    if not texts:
        return []
    keep = max_len if max_len and max_len > 0 else None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [
            (ids[:keep], offsets[:keep], len(ids))
            for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
    out = []
    for e in backend.encode_batch(texts, add_special_tokens=False):
        length = len(e)
        if keep is not None and length > keep:
            e.truncate(keep)
        out.append((e.ids, e.offsets, length))
    return out


def _labelled(
    ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> Example:
    """Label the tokens that start inside a span (offsets of special tokens too)."""
    labels = [IGNORE] * len(ids)
    starts = [start for start, _ in offsets]
    ordered = starts == sorted(starts)  # always, for one text; else label token by token
    for a, b in spans:
        first, last = (bisect_left(starts, a), bisect_left(starts, b)) if ordered else (0, len(ids))
        for t in range(first, last):
            start, end = offsets[t]
            if end > start and a <= start < b:
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
