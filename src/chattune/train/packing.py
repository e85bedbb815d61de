"""Contamination-free packing: several examples per row, no attention across them.

Measured (DESIGN.md §2): restarting ``position_ids`` alone does not isolate packed examples;
a block-diagonal causal 4D attention mask does. The collator builds exactly that mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from chattune.train.template import IGNORE, Example


def pack(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Group example indices into rows of at most ``max_len`` tokens (first-fit decreasing).

    >>> pack([3, 5, 2, 4], 7)
    [[1, 2], [3, 0]]
    """
    order, bounds = pack_arrays(lengths, max_len)
    return [order[a:b].tolist() for a, b in pairwise(bounds)]


def pack_arrays(lengths: Sequence[int] | Any, max_len: int) -> tuple[Any, Any]:
    """:func:`pack` as two numpy arrays, compact for any number of examples: ``order`` (the
    example indices, row after row) and ``bounds`` (row ``r`` is ``order[bounds[r]:bounds[r+1]]``).

    First fit finds the leftmost row with room through a max-tree over the rows' free
    space (log time per example; a scan of the rows would be quadratic in their number).
    """
    import numpy as np

    sizes = np.asarray(lengths, dtype=np.int64)
    if len(sizes) and int(sizes.max()) > max_len:
        i = int(sizes.argmax())
        raise ValueError(f"example {i} has {sizes[i]} tokens > max_len {max_len}")
    by_length = np.argsort(-sizes, kind="stable")  # longest first, ties by index
    width = 1 << max(len(sizes) - 1, 0).bit_length()
    room = [max_len] * (2 * width)  # leaves: each row's free space (unopened rows: all)
    row_of = np.empty(len(sizes), dtype=np.int64)
    for at, size in enumerate(sizes[by_length].tolist()):
        node = 1
        while node < width:  # the leftmost leaf with room >= size
            node = 2 * node if room[2 * node] >= size else 2 * node + 1
        row_of[at] = node - width
        room[node] -= size
        node //= 2
        while node:
            room[node] = max(room[2 * node], room[2 * node + 1])
            node //= 2
    grouped = np.argsort(row_of, kind="stable")  # by row; within a row, in placement order
    counts = np.bincount(row_of, minlength=1)
    bounds = np.concatenate([[0], np.cumsum(counts[counts > 0])])
    return by_length[grouped], bounds


class PackedRows(Sequence[list[Example]]):
    """Training rows over a sequence of examples (a memory-mapped split): row ``r`` is the
    examples :func:`pack_arrays` put together, read when a batch takes it. Without packing,
    one example per row."""

    def __init__(self, examples: Sequence[Example], order: Any, bounds: Any) -> None:
        self.examples, self.order, self.bounds = examples, order, bounds

    @classmethod
    def of(cls, examples: Sequence[Example], max_len: int, packing: bool) -> PackedRows:
        """``examples`` packed, or not; a :class:`~chattune.train.tokens.TokenSplit` gives
        its lengths from its offsets, without reading a row."""
        import numpy as np

        if not packing:
            n = len(examples)
            return cls(examples, np.arange(n), np.arange(n + 1))
        lengths = getattr(examples, "lengths", None)
        sizes = lengths() if lengths else [len(e.input_ids) for e in examples]
        return cls(examples, *pack_arrays(sizes, max_len))

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, r: int) -> list[Example]:  # type: ignore[override]
        if not 0 <= r < len(self):
            raise IndexError(f"row {r} of {len(self)}")
        return [self.examples[int(i)] for i in self.order[self.bounds[r] : self.bounds[r + 1]]]


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
