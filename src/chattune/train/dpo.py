"""Preference tuning (DPO) on the chattune Trainer: the model side of :mod:`dpo_loss`.

**The reference** is the model before this training: for LoRA, the same model with its
adapter disabled (PEFT's ``disable_adapter()``: no second copy in memory); for full
fine-tuning, a frozen copy, or none at all when preprocess stored the reference
log-probabilities (``precompute_reference``).

**One forward pass per model per batch**: each pair is one row (prompt once, both answers
behind a block mask), and only answer tokens go through the output projection, in chunks.
Metrics per logged step, TRL's names: ``loss``, ``rewards/chosen``, ``rewards/rejected``,
``rewards/margins``, ``rewards/accuracies``; evaluation the same with ``eval_``.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, cast

import torch

from chattune.train.dpo_loss import (
    Pair,
    collate_pairs,
    dpo_loss,
    logits_logps,
    reward_metrics,
    sequence_logps,
)
from chattune.train.loss import CHUNK_ELEMENTS, causal_lm, unsupported
from chattune.train.trainer import ChattuneTrainer

MODEL_KEYS = ("input_ids", "position_ids", "attention_mask")


def answer_logps(model: Any, batch: dict[str, Any], chunked: bool = True) -> Any:
    """``(sums, counts)`` of every answer's log-probabilities under ``model`` (chosen
    answers first): the decoder's hidden states caught on their way to the output
    projection, which then sees answer tokens only, in chunks."""
    inputs = {k: batch[k] for k in MODEL_KEYS}
    if not chunked or unsupported(model) is not None:
        return logits_logps(model(**inputs, use_cache=False).logits, batch)
    base = causal_lm(model)
    caught: list[Any] = []
    hook = base.get_decoder().register_forward_hook(lambda _m, _a, out: caught.append(out[0]))
    try:
        model(**inputs, logits_to_keep=1, use_cache=False)
    finally:
        hook.remove()
    head = base.get_output_embeddings()
    chunk = max(1, CHUNK_ELEMENTS // head.weight.shape[0])
    return sequence_logps(caught[-1], batch, head, chunk)


@contextlib.contextmanager
def as_reference(model: Any) -> Iterator[Any]:
    """``model`` as the reference: a PEFT model with its adapter disabled, under no_grad."""
    from peft import PeftModel

    with torch.no_grad():
        if isinstance(model, PeftModel):
            with model.disable_adapter():
                yield model
        else:
            yield model


def pair_losses(
    model: Any, batch: dict[str, Any], beta: float, loss_type: str, reference: Any = None,
    chunked: bool = True,
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """Per-pair losses and the batch's reward metrics. The reference log-probs come from
    the batch (precomputed), else ``reference`` (a frozen model), else ``model`` itself with
    its LoRA adapter disabled."""
    sums, counts = answer_logps(model, batch, chunked)
    if "reference_logps" in batch:
        ref = batch["reference_logps"].to(sums.device)
    else:
        with as_reference(reference if reference is not None else model) as ref_model:
            ref, _ = answer_logps(ref_model, batch, chunked)
    n = sums.shape[0] // 2
    losses, chosen, rejected = dpo_loss(
        sums[:n], sums[n:], ref[:n], ref[n:], beta, loss_type, (counts[:n], counts[n:])
    )
    metrics = reward_metrics(chosen, rejected)
    metrics["logps/chosen"], metrics["logps/rejected"] = sums[:n].detach(), sums[n:].detach()
    return losses, metrics


class DPOTrainer(ChattuneTrainer):
    """:class:`ChattuneTrainer` with DPO's loss, metrics and evaluation (train rows are
    :class:`Pair`; the collator is :func:`collate_pairs`)."""

    def __init__(
        self, *args: Any, beta: float, loss_type: str, reference_model: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.beta, self.loss_type, self.reference_model = beta, loss_type, reference_model
        # A pair's loss is a mean over pairs: the Trainer divides it by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.step_metrics: dict[str, list[float]] = defaultdict(list)
        """Reward metrics of the batches since the last log (their means are logged)."""
        self.loss_note = "DPO: " + self.loss_note.replace("cross-entropy", "answer log-probs")

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:  # fmt: skip
        """The mean DPO loss of the batch's pairs; its reward metrics are kept for the log."""
        with self.adapters_in_bf16(model):
            losses, metrics = pair_losses(
                model, inputs, self.beta, self.loss_type, self.reference_model, self.chunked_loss
            )
        for name, value in metrics.items():
            self.step_metrics[name].append(float(value.float().mean()))
        loss = losses.mean()
        return (loss, {}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The stock log, with the reward metrics' means since the last training log."""
        if "loss" in logs and self.step_metrics:
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self.step_metrics.items()}}
            self.step_metrics.clear()
        super().log(logs, start_time)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """``eval_loss`` and ``eval_rewards/*`` on the evaluation pairs, by :func:`score_pairs`."""
        pairs = cast(list[Pair], eval_dataset if eval_dataset is not None else self.eval_dataset)
        model = cast(Any, self.model)
        was_training, started = model.training, time.time()
        model.eval()
        try:
            with self.adapters_in_bf16(model):
                scored = score_pairs(
                    model, pairs, self.args.per_device_eval_batch_size, self.beta,
                    self.loss_type, self.reference_model,
                )  # fmt: skip
        finally:
            model.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scored.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - started, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


def score_pairs(
    model: Any, pairs: list[Pair], batch_size: int, beta: float, loss_type: str,
    reference: Any = None,
) -> dict[str, float]:  # fmt: skip
    """Mean DPO loss and reward metrics over ``pairs`` (each pair weighs the same), plus
    ``logps_accuracy``: how often the model finds the chosen answer likelier than the
    rejected one (no reference involved)."""
    totals: dict[str, float] = defaultdict(float)
    pad = getattr(model.config, "pad_token_id", None) or 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            batch = {k: v.to(device) for k, v in collate_pairs(chunk, pad).items()}
            losses, metrics = pair_losses(model, batch, beta, loss_type, reference)
            totals["loss"] += float(losses.sum())
            for name in ("rewards/chosen", "rewards/rejected", "rewards/margins",
                         "rewards/accuracies"):  # fmt: skip
                totals[name] += float(metrics[name]) * len(chunk)
            better = metrics["logps/chosen"] > metrics["logps/rejected"]
            totals["logps_accuracy"] += float(better.float().sum())
    return {k: v / max(len(pairs), 1) for k, v in totals.items()}


def with_reference(model: Any, pairs: list[Pair], batch: int = 4) -> list[Pair]:
    """``pairs`` with ``model``'s answer log-probs as their reference log-probs."""
    pad = getattr(model.config, "pad_token_id", None) or 0
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            data = {k: v.to(model.device) for k, v in collate_pairs(chunk, pad).items()}
            sums, _ = answer_logps(model, data)
            n = len(chunk)
            for pair, c, r in zip(chunk, sums[:n].tolist(), sums[n:].tolist(), strict=True):
                out.append(Pair(pair.prompt, pair.chosen, pair.rejected, c, r))
    return out
