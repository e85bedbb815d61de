"""transformers' Trainer, evaluating with chattune's one definition of the eval metrics.

The stock evaluation loop averages per-batch mean losses over packed rows; here evaluation
calls :func:`chattune.train.scoring.score` on the eval split's conversations, one by one,
so ``eval_loss`` during training and ``test_loss`` after it answer the same question the
same way (a test checks they agree on the same model and split).
"""

from __future__ import annotations

import time
from typing import Any

import transformers

from chattune.train.scoring import score


class Trainer(transformers.Trainer):
    """A ``transformers.Trainer`` whose ``evaluate`` is :func:`score` (``eval_loss``,
    ``eval_perplexity``, ``eval_token_accuracy``); everything else is the stock Trainer."""

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        rows = eval_dataset if eval_dataset is not None else self.eval_dataset
        examples = [example for row in rows for example in row]  # unpack packed rows
        model = self.model
        was_training = model.training
        started = time.time()
        model.eval()
        try:
            scored = score(model, examples, self.args.per_device_eval_batch_size)
        finally:
            model.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scored.items() if k != "tokens"}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - started, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics
