"""Per-row logit adjustments of a decoding step: OpenAI's ``logit_bias``,
``presence_penalty`` and ``frequency_penalty``, and transformers'/vLLM's
``repetition_penalty``, each row with its own values, vectorised over the rows that ask.

Order and meaning as in vLLM: the bias is added first; then a token already in the prompt or
the answer has its logit divided by ``repetition_penalty`` (multiplied when negative); then
``frequency_penalty`` times its count in the answer and ``presence_penalty`` if it occurs in
the answer are subtracted. Log probabilities are still reported from the model's own logits.

>>> import torch
>>> params = GenerationParams(logit_bias=((1, -100.0),))
>>> adjust(torch.zeros(1, 3), [Row(params, [], [])]).tolist()
[[0.0, -100.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chattune.serving.worker.engines import GenerationParams, RequestRefused


@dataclass(frozen=True)
class Row:
    """One row of a step: its parameters, prompt ids and answer ids so far."""

    params: GenerationParams
    prompt: Sequence[int]
    answer: Sequence[int]


def check_bias(params: GenerationParams, vocab_size: int) -> None:
    """:class:`RequestRefused` when ``logit_bias`` names a token the model does not have."""
    bad = [token for token, _ in params.logit_bias if token >= vocab_size]
    if bad:
        raise RequestRefused(
            f"logit_bias: token id {bad[0]} is not in the model's vocabulary of {vocab_size} "
            "tokens; use ids the model's tokenizer gives"
        )


def adjust(logits: Any, rows: Sequence[Row]) -> Any:
    """``logits`` ([rows, vocab]) with each row's bias and penalties applied (a new tensor;
    ``logits`` itself when no row asks for any)."""
    import torch

    active = [i for i, row in enumerate(rows) if row.params.adjusts_logits]
    if not active:
        return logits
    vocab, device = logits.shape[-1], logits.device
    chosen = [rows[i] for i in active]
    index = torch.tensor(active, device=device)
    sub = logits[index].clone()
    _add_bias(sub, chosen)
    counts = _counts([row.answer for row in chosen], vocab, device)
    repetition = _column([row.params.repetition_penalty for row in chosen], device)
    if bool((repetition != 1.0).any()):
        seen = (counts > 0) | (_counts([row.prompt for row in chosen], vocab, device) > 0)
        penalized = torch.where(sub > 0, sub / repetition, sub * repetition)
        sub = torch.where(seen, penalized, sub)
    frequency = _column([row.params.frequency_penalty for row in chosen], device)
    presence = _column([row.params.presence_penalty for row in chosen], device)
    sub = sub - frequency * counts - presence * (counts > 0).to(sub.dtype)
    out = logits.clone()
    out[index] = sub
    return out


def _column(values: list[float], device: Any) -> Any:
    import torch

    return torch.tensor(values, dtype=torch.float32, device=device)[:, None]


def _counts(ids: list[Sequence[int]], vocab: int, device: Any) -> Any:
    """How often each token occurs in each row's ``ids`` ([rows, vocab], float)."""
    import torch

    width = max((len(x) for x in ids), default=0)
    if width == 0:
        return torch.zeros(len(ids), vocab, device=device)
    # Padding points at an extra column, dropped after counting.
    padded = torch.tensor([list(x) + [vocab] * (width - len(x)) for x in ids], device=device)
    counts = torch.zeros(len(ids), vocab + 1, device=device)
    counts.scatter_add_(1, padded, torch.ones_like(padded, dtype=counts.dtype))
    return counts[:, :vocab]


def _add_bias(sub: Any, rows: list[Row]) -> None:
    import torch

    pairs = [
        (r, token, bias) for r, row in enumerate(rows) for token, bias in row.params.logit_bias
    ]
    if not pairs:
        return
    at_row, at_token, values = zip(*pairs, strict=True)
    device = sub.device
    sub.index_put_(
        (torch.tensor(at_row, device=device), torch.tensor(at_token, device=device)),
        torch.tensor(values, dtype=sub.dtype, device=device),
        accumulate=True,
    )


class Processor:
    """A transformers logits processor applying :func:`adjust` to a static ``generate``
    batch: the rows share ``params``; ``prompt_lens`` are the unpadded prompt lengths in
    the left-padded ``input_ids`` whose first ``width`` columns are the prompts."""

    def __init__(self, params: GenerationParams, prompt_lens: list[int], width: int) -> None:
        self.params = params
        self.prompt_lens = prompt_lens
        self.width = width

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        ids = input_ids.tolist()
        rows = [
            Row(self.params, row[self.width - n : self.width], row[self.width :])
            for row, n in zip(ids, self.prompt_lens, strict=True)
        ]
        return adjust(scores, rows)
