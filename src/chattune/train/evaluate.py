"""Stage `evaluate`: loss, perplexity and token accuracy on the test split, base vs fine-tuned.

Both models are scored on the same preprocessed examples (assistant tokens only), so the
difference is what fine-tuning bought.
"""

from __future__ import annotations

import math
from typing import Any

from chattune.train.packing import collate
from chattune.train.params import TrainParams
from chattune.train.preprocess import read_examples
from chattune.train.results import Evaluation, FineTuned, Hooks, Preprocessed
from chattune.train.template import Example


def run(data: Preprocessed, tuned: FineTuned, p: TrainParams, hooks: Hooks) -> Evaluation:
    """Score the base and the fine-tuned model; log ``test_*`` and ``base_test_*`` metrics."""
    if "test" not in data.splits:
        hooks.log.info("no data.test: nothing to evaluate")
        return Evaluation(skipped="no test data")
    examples = read_examples(data.splits["test"].file)
    batch = p.per_device_eval_batch_size
    dtype = "bfloat16" if p.precision == "bf16" else "float32"
    base = score(load_model(tuned.base_model_dir, dtype=dtype), examples, batch)
    adapter_base = tuned.base_model_dir if tuned.adapter_only else None
    fine = score(load_model(tuned.final_model, adapter_base, dtype=dtype), examples, batch)
    metrics = {f"test_{k}": v for k, v in fine.items()}
    metrics |= {f"base_test_{k}": v for k, v in base.items()}
    hooks.metrics(metrics, None)
    hooks.log.info(
        "base: loss %.4f ppl %.2f acc %.3f | fine-tuned: loss %.4f ppl %.2f acc %.3f",
        base["loss"],
        base["perplexity"],
        base["token_accuracy"],
        fine["loss"],
        fine["perplexity"],
        fine["token_accuracy"],
    )
    return Evaluation(metrics=metrics, examples=len(examples))


def load_model(folder: str, base_dir: str | None = None, dtype: str = "float32") -> Any:
    """A model for scoring, on the GPU when there is one: a full folder, or ``base_dir``
    with the LoRA adapter in ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = getattr(torch, dtype)
    if base_dir is None:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    else:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, folder)
    return model.to(device).eval()


def score(model: Any, examples: list[Example], batch_size: int = 1) -> dict[str, float]:
    """Token-weighted loss, perplexity and next-token accuracy on assistant tokens."""
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
