"""The one definition of eval loss, perplexity and token accuracy.

Used by the training-time evaluation (:class:`chattune.train.trainer.Trainer`, metrics
``eval_*`` on the validation split, else test) and by the ``evaluate`` stage (``test_*`` and
``base_test_*`` on the test split): the same code, so the same model on the same split gives
the same numbers. Each conversation is scored alone (never packed with others), and every
assistant token weighs the same: loss = summed token cross-entropy / assistant tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from chattune.train.packing import collate
from chattune.train.template import Example


def score(model: Any, examples: Sequence[Example], batch_size: int = 1) -> dict[str, float]:
    """Token-weighted loss, perplexity and next-token accuracy on assistant tokens.

    ``examples`` may be a memory-mapped split: rows are read one batch at a time.

    >>> score(model, read_examples("preprocess/test.tokens"))["loss"]    # doctest: +SKIP
    1.6343
    """
    import torch

    total_loss, correct, count = 0.0, 0, 0
    pad = getattr(model.config, "pad_token_id", None) or 0
    with torch.inference_mode():
        for i in range(0, len(examples), batch_size):
            batch = collate([[e] for e in examples[i : i + batch_size]], pad)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            labels = batch.pop("labels")
            logits = model(**batch).logits[:, :-1].float()
            target = labels[:, 1:]
            keep = target != -100
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), target.clamp(min=0), reduction="none"
            )
            total_loss += losses[keep].sum().item()
            correct += (logits.argmax(-1) == target)[keep].sum().item()
            count += keep.sum().item()
    loss = total_loss / max(count, 1)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50)),
        "token_accuracy": correct / max(count, 1),
        "tokens": float(count),
    }


def load_model(folder: str, base_dir: str | None = None, dtype: str = "float32") -> Any:
    """A model for scoring, on the GPU when there is one: a full folder, or ``base_dir``
    with the LoRA adapter in ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = getattr(torch, dtype)
    if base_dir is None:
        model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    else:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, folder)
    return model.to(device).eval()
