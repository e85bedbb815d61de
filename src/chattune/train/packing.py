"""Contamination-free packing: several examples per row, no attention across them.

Measured (DESIGN.md §2): restarting ``position_ids`` alone does not isolate packed examples;
a block-diagonal causal 4D attention mask does. The collator builds exactly that mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chattune.train.template import IGNORE, Example


def pack(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Group example indices into rows of at most ``max_len`` tokens (first-fit decreasing).

    >>> pack([3, 5, 2, 4], 7)
    [[1, 2], [3, 0]]
    """
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        if lengths[i] > max_len:
            raise ValueError(f"example {i} has {lengths[i]} tokens > max_len {max_len}")
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(max_len - lengths[i])
    return bins


def collate(rows: list[list[Example]], pad_id: int) -> dict[str, Any]:
    """Batch of packed rows → input_ids, labels, position_ids and a 4D block-causal mask.

    ``attention_mask[b, 0, q, k]`` is True when query token ``q`` may attend key ``k``:
    same example and ``k <= q``. Padding attends only itself (keeps softmax finite).
    """
    import torch

    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for s, ex in enumerate(row):
            k = len(ex.input_ids)
            input_ids[b, at : at + k] = torch.tensor(ex.input_ids)
            labels[b, at : at + k] = torch.tensor(ex.labels)
            position_ids[b, at : at + k] = torch.arange(k)
            segment[b, at : at + k] = s
            at += k
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = segment[:, :, None] == segment[:, None, :]
    real = (segment >= 0)[:, :, None]
    mask = same & causal & real
    mask |= torch.eye(width, dtype=torch.bool)  # padding rows attend themselves only
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "attention_mask": mask[:, None, :, :],
    }
