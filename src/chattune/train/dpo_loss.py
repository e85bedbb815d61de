"""DPO's loss, and the per-answer log-probabilities it is computed from.

Pure functions (nanoGPT's ``get_lr`` habit): the tests check them against a direct
computation. The model side is in :mod:`chattune.train.dpo`.

**One row per pair, the prompt once.** A pair's row is ``prompt + chosen + rejected``; a
block mask lets each answer see the prompt and itself only (never the other answer), and
position ids restart at the prompt's end for the rejected answer, so each answer is
computed exactly as if it followed the prompt alone (TRL instead runs ``prompt + chosen``
and ``prompt + rejected`` as two padded rows: the prompt twice, and padding). Each answer
token is predicted from the hidden state of the token before it in *its own* sequence: the
last prompt token for both answers' first tokens.

**Only answer tokens count**, and no full-vocabulary logits exist for the whole batch: the
log-probabilities are computed through the output projection in chunks of answer tokens,
each recomputed in the backward pass (as :mod:`chattune.train.loss` does for SFT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOSS_TYPES = ("sigmoid", "ipo")


@dataclass(frozen=True)
class Pair:
    """One tokenized preference pair: the prompt's ids and each answer's ids."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    ref_chosen: float | None = None
    """Reference log-probabilities, when precomputed (full fine-tuning)."""
    ref_rejected: float | None = None

    @property
    def tokens(self) -> int:
        """Tokens of ``prompt + chosen`` and ``prompt + rejected``: what both answers cost
        when each is a sequence of its own (the unit of tokens/s)."""
        return 2 * len(self.prompt) + len(self.chosen) + len(self.rejected)


def dpo_loss(
    policy_chosen: Any,
    policy_rejected: Any,
    ref_chosen: Any,
    ref_rejected: Any,
    beta: float,
    loss_type: str = "sigmoid",
    lengths: tuple[Any, Any] | None = None,
) -> tuple[Any, Any, Any]:
    """Per-pair ``(losses, chosen_rewards, rejected_rewards)`` from summed answer log-probs.

    With ``d = (pc - rc) - (pr - rr)`` (policy and reference, chosen and rejected):
    ``sigmoid`` (DPO, Rafailov et al. 2023) is ``-logsigmoid(beta * d)``; ``ipo`` (Azar et
    al. 2023) is ``(d_ - 1 / (2 * beta)) ** 2`` where ``d_`` divides each answer's log-ratio
    by its token count (``lengths``, chosen and rejected), as TRL does and the IPO authors
    confirm. Rewards are ``beta * (p - r)`` of each answer, detached.

    >>> import torch
    >>> losses, c, r = dpo_loss(*map(torch.tensor, ([-1.0], [-2.0], [-1.5], [-1.5])), 0.1)
    >>> round(float(losses[0]), 4), round(float(c[0] - r[0]), 4)
    (0.6444, 0.1)
    """
    import torch

    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type {loss_type!r}: use one of {', '.join(LOSS_TYPES)}")
    chosen_ratio, rejected_ratio = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    if loss_type == "sigmoid":
        losses = -torch.nn.functional.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    else:
        if lengths is None:
            raise ValueError("the ipo loss needs the answers' token counts (lengths)")
        chosen_len, rejected_len = (n.clamp(min=1) for n in lengths)
        delta = chosen_ratio / chosen_len - rejected_ratio / rejected_len
        losses = (delta - 1 / (2 * beta)) ** 2
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def reward_metrics(chosen_rewards: Any, rejected_rewards: Any) -> dict[str, Any]:
    """TRL's names: mean rewards, margins, and accuracy (chosen reward strictly higher)."""
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
    }


def collate_pairs(pairs: list[Pair], pad_id: int) -> dict[str, Any]:
    """A batch of pairs, one row each (``prompt + chosen + rejected``, the layout in the
    module docstring): ``input_ids``, ``position_ids``, a 4D bool ``attention_mask``, and
    for every answer token its row, the position that predicts it (``source``), the token
    (``target``) and its sequence (``sequence``: pair i's chosen is i, its rejected n + i).
    """
    import torch

    n = len(pairs)
    width = max(len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)  # 0 prompt, 1 chosen, 2 rejected
    rows, source, target, sequence = [], [], [], []
    for b, pair in enumerate(pairs):
        lp, lc, lr = len(pair.prompt), len(pair.chosen), len(pair.rejected)
        input_ids[b, : lp + lc + lr] = torch.tensor(pair.prompt + pair.chosen + pair.rejected)
        position_ids[b, : lp + lc] = torch.arange(lp + lc)
        position_ids[b, lp + lc : lp + lc + lr] = torch.arange(lp, lp + lr)
        segment[b, :lp], segment[b, lp : lp + lc], segment[b, lp + lc : lp + lc + lr] = 0, 1, 2
        for start, length, seq in ((lp, lc, b), (lp + lc, lr, n + b)):
            before = torch.arange(start - 1, start + length - 1)
            before[0] = lp - 1  # each answer's first token follows the prompt's last
            rows.append(torch.full((length,), b))
            source.append(before)
            target.append(torch.arange(start, start + length))
            sequence.append(torch.full((length,), seq))
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    seen = (segment[:, :, None] == segment[:, None, :]) | (segment[:, None, :] == 0)
    mask = seen & causal & (segment >= 0)[:, :, None] & (segment >= 0)[:, None, :]
    mask |= torch.eye(width, dtype=torch.bool)  # padding attends itself (finite softmax)
    row, tgt = torch.cat(rows), torch.cat(target)
    answer = {
        "row": row,
        "source": torch.cat(source),
        "target": input_ids[row, tgt],
        "sequence": torch.cat(sequence),
        "n_sequences": torch.tensor(2 * n),
    }
    out = {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": mask[:, None, :, :],
        **{f"answer_{k}": v for k, v in answer.items()},
    }
    if all(p.ref_chosen is not None for p in pairs):
        refs = [p.ref_chosen for p in pairs] + [p.ref_rejected for p in pairs]
        out["reference_logps"] = torch.tensor(refs, dtype=torch.float32)
    return out


def sequence_logps(hidden: Any, batch: dict[str, Any], head: Any, chunk_tokens: int) -> Any:
    """``(sums, counts)`` per answer sequence (chosen ones first, then rejected): summed
    log-probabilities of the answer tokens under ``head(hidden)``, in chunks of
    ``chunk_tokens`` answer tokens, each recomputed in the backward pass."""
    import torch
    from torch.utils.checkpoint import checkpoint

    states = hidden[batch["answer_row"], batch["answer_source"]]
    wanted = batch["answer_target"].to(hidden.device)
    parts = [
        checkpoint(
            _chunk_logps,
            states[s : s + chunk_tokens],
            wanted[s : s + chunk_tokens],
            head,
            use_reentrant=False,
        )
        for s in range(0, wanted.shape[0], chunk_tokens)
    ]
    return _per_sequence(torch.cat(parts), batch)


def logits_logps(logits: Any, batch: dict[str, Any]) -> Any:
    """:func:`sequence_logps` from full logits (models the chunked path cannot split)."""
    import torch

    chosen = logits[batch["answer_row"], batch["answer_source"]].float()
    wanted = batch["answer_target"].to(logits.device)
    token = -torch.nn.functional.cross_entropy(chosen, wanted, reduction="none")
    return _per_sequence(token, batch)


def _per_sequence(token_logps: Any, batch: dict[str, Any]) -> Any:
    import torch

    n = int(batch["answer_n_sequences"])
    seq = batch["answer_sequence"].to(token_logps.device)
    sums = torch.zeros(n, dtype=torch.float32, device=token_logps.device)
    sums = sums.index_add(0, seq, token_logps.float())
    counts = torch.zeros(n, device=token_logps.device).index_add(
        0, seq, torch.ones_like(token_logps, dtype=torch.float32)
    )
    return sums, counts


def _chunk_logps(states: Any, wanted: Any, head: Any) -> Any:
    import torch

    logits = head(states).float()
    return -torch.nn.functional.cross_entropy(logits, wanted, reduction="none")
