"""Claim: on this CPU, LoRA training steps in bf16 are faster than float32; which bf16?

Three ways to run the same LoRA training steps on the same packed rows, side by side:
- float32 weights and compute (the baseline, ``precision: 32``);
- autocast: float32 weights, matmuls in bf16 (``torch.autocast("cpu", torch.bfloat16)``);
- bf16 weights: the frozen base in bf16, LoRA adapters float32 (PEFT's default); what
  ``precision: bf16`` with LoRA does on a CPU (chattune.train.finetune.bf16_weights).
The loss of each after the same steps is printed too: a faster variant must still learn.

    .venv/bin/python benchmarks/bf16_cpu.py [--model SmolLM2-135M-Instruct] [--steps 6]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from chattune.catalog import assets
from chattune.data.readers import load_conversations
from chattune.train.finetune import add_lora
from chattune.train.packing import collate, pack
from chattune.train.params import TrainParams
from chattune.train.template import tokenize_conversation


def run(folder, batches, dtype: torch.dtype, autocast: bool) -> tuple[float, float, float]:
    """(seconds per step after warm-up, first loss, last loss) for one variant."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    model = add_lora(model, TrainParams(lora_r=8, lora_alpha=16))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    losses, times = [], []
    for batch in batches:
        start = time.perf_counter()
        with ctx:
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return sum(times[1:]) / len(times[1:]), losses[0], losses[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-len", type=int, default=512)
    args = parser.parse_args()
    folder = assets.fetch([args.model])[args.model]
    data = assets.fetch(["ultrachat-sample"])["ultrachat-sample"]
    tok = AutoTokenizer.from_pretrained(folder)
    convs = load_conversations(data, split="train_sft")[: args.steps * 4]
    examples = [tokenize_conversation(tok, c.messages, max_len=args.max_len) for c in convs]
    lengths = [len(e.input_ids) for e in examples]
    rows = [[examples[i] for i in g] for g in pack(lengths, args.max_len)]
    batches = [collate([rows[i % len(rows)]], tok.pad_token_id) for i in range(args.steps)]
    variants = {
        "float32 (baseline)": (torch.float32, False),
        "autocast bf16": (torch.float32, True),
        "bf16 weights": (torch.bfloat16, False),
    }
    results = {}
    for name, variant in variants.items():
        results[name] = run(folder, batches, *variant)
        print(f"{name}: {results[name][0]:.3f} s/step", flush=True)
    base = results["float32 (baseline)"][0]
    print(
        f"model {args.model}, LoRA r 8, {args.steps} steps of one packed row of "
        f"{args.max_len} tokens, torch threads {torch.get_num_threads()}"
    )
    print(f"{'variant':<22}{'s/step':>9}{'speed-up':>10}{'first loss':>12}{'last loss':>11}")
    for name, (sec, first, last) in results.items():
        print(f"{name:<22}{sec:>9.3f}{base / sec:>9.2f}x{first:>12.4f}{last:>11.4f}")


if __name__ == "__main__":
    main()
