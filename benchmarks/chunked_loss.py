"""Claim: the chunked loss costs no speed and keeps no full-vocabulary logits for backward.

One forward+backward of SmolLM2-135M-Instruct (LoRA r8, float32) on the same batch, with the
model's own loss and with chattune.train.loss.causal_lm_loss, interleaved (A, B, A, B...),
median seconds per side; and the megabytes each keeps for the backward pass.

    .venv/bin/python benchmarks/chunked_loss.py [--rows 2] [--max-len 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

from chattune.catalog import assets
from chattune.train.finetune import add_lora
from chattune.train.loss import causal_lm_loss
from chattune.train.params import TrainParams


def saved_mb(step) -> float:
    """Megabytes of distinct tensors autograd keeps between the forward and the backward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = assets.fetch([args.model])[args.model]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = add_lora(model, TrainParams(lora_r=8, lora_alpha=16))
    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (args.rows, args.max_len))
    labels = ids.clone()
    labels[:, : args.max_len // 3] = -100  # a prompt: no target
    batch = {"input_ids": ids, "labels": labels}
    sides = {
        "model's own loss": lambda: model(**batch).loss.backward(),
        "chunked (chattune)": lambda: causal_lm_loss(model, batch).backward(),
    }
    memory = {name: saved_mb(step) for name, step in sides.items()}  # also the warm-up
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, step in sides.items():
            start = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - start)
    print(
        f"{args.model} LoRA r8 float32, {args.rows} x {args.max_len} tokens, "
        f"{args.repeats} interleaved repeats, torch threads {torch.get_num_threads()}"
    )
    print(f"{'loss':<22}{'median s':>10}{'kept for backward MB':>22}")
    for name in sides:
        print(f"{name:<22}{statistics.median(seconds[name]):>10.2f}{memory[name]:>22.0f}")
    own, ours = (statistics.median(seconds[n]) for n in sides)
    print(f"speed: {own / ours:.2f}x the model's own loss")


if __name__ == "__main__":
    main()
