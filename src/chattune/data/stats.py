"""Statistics of a chat dataset (``chattune data show``) and a length histogram.

With a tokenizer the lengths are counted in tokens of the conversation rendered by the
model's own chat template, the way preprocess will see it: for a template that drops system
messages (Phi-3), the system text is folded into the first user turn first, and the stats
say how many rows that affects.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from chattune.data.chat import prepare_messages, template_drops_system
from chattune.data.convert import prompt_id as make_prompt_id
from chattune.data.schema import Conversation, Message

Row = Conversation | list[Message]
BATCH = 256


def describe(
    rows: Iterable[Row], tokenizer: Any = None, plot: Path | None = None
) -> dict[str, Any]:
    """Counts, lengths, roles and duplicates of ``rows``; optionally a histogram PNG.

    ``turns`` counts user and assistant messages per row; ``chars`` all message text per row;
    ``tokens`` (with a tokenizer) the templated conversation; ``duplicate_prompt_ids`` the
    rows whose prompt_id (sha256 of the first user text when absent) came before. ``rows``
    is streamed: only a few numbers per row are kept.

    >>> row = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    >>> describe([row])["turns"]
    {'min': 2, 'mean': 2.0, 'max': 2}
    """
    roles: Counter[str] = Counter()
    turns: list[int] = []
    chars: list[int] = []
    lengths: list[int] = []
    seen: set[str] = set()
    duplicates = with_system = 0
    batch: list[list[Message]] = []
    for row in rows:
        msgs = _messages(row)
        roles.update(m["role"] for m in msgs)
        with_system += bool(msgs) and msgs[0]["role"] == "system"
        turns.append(sum(m["role"] != "system" for m in msgs))
        chars.append(sum(len(m["content"]) for m in msgs))
        pid = row.prompt_id if isinstance(row, Conversation) and row.prompt_id else _prompt_id(msgs)
        duplicates += pid in seen
        seen.add(pid)
        if tokenizer is not None:
            batch.append(msgs)
            if len(batch) == BATCH:
                lengths += token_lengths(batch, tokenizer)
                batch = []
    if tokenizer is not None:
        lengths += token_lengths(batch, tokenizer)
    stats: dict[str, Any] = {
        "rows": len(turns),
        "turns": _summary(turns),
        "chars": {**_summary(chars), "total": sum(chars)},
        "roles": {role: roles.get(role, 0) for role in ("system", "user", "assistant")},
        "system_share": round(with_system / len(turns), 4) if turns else 0.0,
        "duplicate_prompt_ids": duplicates,
    }
    unit = "chars"
    if tokenizer is not None:
        unit = "tokens"
        stats.update(_token_stats(lengths, tokenizer, with_system))
    if plot is not None:
        stats["plot"] = str(
            histogram(lengths if tokenizer is not None else chars, turns, Path(plot), unit)
        )
    return stats


def _token_stats(lengths: list[int], tokenizer: Any, with_system: int) -> dict[str, Any]:
    tokens: dict[str, Any] = {**_summary(lengths), "total": sum(lengths)}
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 10**7:
        tokens["model_max_length"] = limit
        tokens["over_max_length"] = sum(n > limit for n in lengths)
    drops = template_drops_system(tokenizer)
    return {
        "tokens": tokens,
        "template_drops_system": drops,
        "system_folded": with_system if drops else 0,
    }


def token_lengths(conversations: Sequence[list[Message]], tokenizer: Any) -> list[int]:
    """Token count of each conversation rendered by the tokenizer's chat template."""
    texts = [
        tokenizer.apply_chat_template(prepare_messages(tokenizer, msgs), tokenize=False)
        for msgs in conversations
    ]
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


def histogram(
    lengths: Sequence[int], turns: Sequence[int], out: Path, unit: str = "tokens"
) -> Path:
    """Write a PNG with a length histogram and a turns histogram; returns ``out``.

    Uses the Agg canvas directly (no pyplot, no display needed) and an atomic rename.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    left.hist(list(lengths), bins=40, color="#4c72b0")
    left.set(title=f"length per conversation ({unit})", xlabel=unit, ylabel="rows")
    right.hist(list(turns), bins=range(0, max(turns, default=0) + 2), color="#55a868", align="left")
    right.set(title="turns per conversation", xlabel="user + assistant turns", ylabel="rows")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)
    return out


def _messages(row: Row) -> list[Message]:
    return row.messages if isinstance(row, Conversation) else row


def _prompt_id(messages: list[Message]) -> str:
    return make_prompt_id(next((m["content"] for m in messages if m["role"] == "user"), ""))


def _summary(values: Sequence[int]) -> dict[str, Any]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(fmean(values), 2), "max": max(values)}
