"""Claim: chattune's DPO trains faster than TRL's DPOTrainer, in no more memory, to the same loss.

Same rows (the first N pairs of preference-sample's train_prefs, tokenized once by chattune's
preprocess and truncated alike: prompt kept to its last ``max_prompt`` tokens, answers to
what ``max_len`` leaves), model (SmolLM2-135M-Instruct, LoRA r8 alpha 16 all-linear, bf16
weights), batch, steps, learning rate, beta and seed (so the same shuffled order). Each run in
its own process (its peak RSS is its own), variants interleaved (A, B, A, B, ...), the median
of each. TRL gets the same pairs as text (decoded from chattune's ids; it re-tokenizes them
and adds EOS where an answer was cut), at the best CPU settings found: bf16 weights and
``bf16=True``, LoRA reference by disabled adapter (its default with PEFT), its fused
log-prob head, no truncation (``max_length=None``: the rows are cut already).

tokens/s: non-padding tokens of ``prompt + chosen`` and ``prompt + rejected`` of the pairs
trained on (each variant counts its own tokenization), over the wall time of ``train()``.
Final loss and reward accuracy: the mean over the last 3 steps' logs.

    .venv/bin/python benchmarks/dpo_vs_trl.py                 # 3 repeats, ~15 min on 2 cores
    .venv/bin/python benchmarks/dpo_vs_trl.py --repeats 1 --steps 4
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("chattune", "trl")
SMOL = "SmolLM2-135M-Instruct"


def child(variant: str, cfg: dict) -> dict:
    """One run: preprocess (untimed), train ``cfg['steps']`` steps (timed), read the logs."""
    import torch

    from chattune.catalog import assets
    from chattune.train import preference
    from chattune.train.results import Hooks, ImportedModel

    torch.manual_seed(0)
    model_dir = str(assets.fetch([SMOL])[SMOL])
    tmp = Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    rows = tmp / "pairs.jsonl"
    source = assets.fetch(["preference-sample"])["preference-sample"]
    write_rows(source, cfg["rows"], rows)
    imported = ImportedModel(
        model_dir=model_dir, model=SMOL, model_type="llama", context_length=8192
    )
    hooks = Hooks(log=logging.getLogger("bench"))
    prep = preference.run(
        imported, {"train": str(rows)}, cfg["max_len"], cfg["max_prompt"], tmp / "prep", hooks
    )
    if variant == "chattune":
        trainer, tokens = chattune_trainer(imported, prep, cfg, tmp)
    else:
        trainer, tokens = trl_trainer(model_dir, prep, cfg, tmp)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    logs = [entry for entry in trainer.state.log_history if "loss" in entry][-3:]
    return {
        "variant": variant,
        "tokens_per_s": tokens / seconds,  # one epoch: every pair once
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": statistics.mean(e["loss"] for e in logs),
        "reward_accuracy": statistics.mean(e["rewards/accuracies"] for e in logs),
        "train_s": seconds,
    }


def write_rows(source: Path, n: int, out: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(next((source / "data").glob("train_prefs-*.parquet")))
    with open(out, "w") as f:
        for row in table.slice(0, n).to_pylist():
            f.write(json.dumps(row) + "\n")


def prep_pairs(prep):
    from chattune.train.preference import read_pairs

    return read_pairs(prep.splits["train"].file)


def chattune_trainer(imported, prep, cfg: dict, tmp: Path):
    from transformers import AutoTokenizer

    from chattune.train import dpo_stage
    from chattune.train.params import TrainParams
    from chattune.train.results import Hooks

    p = TrainParams(**common(cfg), max_prompt_length=cfg["max_prompt"])
    tokenizer = AutoTokenizer.from_pretrained(imported.model_dir)
    hooks = Hooks(log=logging.getLogger("bench"))
    trainer = dpo_stage.build_trainer(imported, tokenizer, prep, p, tmp / "ft", hooks)
    return trainer, sum(pair.tokens for pair in prep_pairs(prep))


def common(cfg: dict) -> dict:
    return {
        "max_steps": cfg["steps"],
        "per_device_train_batch_size": cfg["batch"],
        "learning_rate": cfg["lr"],
        "precision": "bf16",
        "lora_r": 8,
        "lora_alpha": 16,
        "evaluation_strategy": "no",
        "logging_steps": 1,
        "save_steps": 10_000,
        "max_seq_length": cfg["max_len"],
        "beta": cfg["beta"],
        "seed": 42,
    }


def trl_trainer(model_dir: str, prep, cfg: dict, tmp: Path):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = prep_pairs(prep)
    data = Dataset.from_list(
        [
            {
                "prompt": tokenizer.decode(p.prompt),
                "chosen": tokenizer.decode(p.chosen),
                "rejected": tokenizer.decode(p.rejected),
            }
            for p in pairs
        ]
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    c = common(cfg)
    args = DPOConfig(
        output_dir=str(tmp / "trl"),
        max_steps=c["max_steps"],
        per_device_train_batch_size=c["per_device_train_batch_size"],
        learning_rate=c["learning_rate"],
        beta=c["beta"],
        seed=42,
        bf16=True,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        max_length=None,
        disable_tqdm=True,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
    )
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora
    )
    tokens = sum(
        2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"])
        for r in trainer.train_dataset
    )
    return trainer, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=VARIANTS)
    parser.add_argument("--config", default="{}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=160)
    parser.add_argument("--max-prompt", type=int, default=64)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, json.loads(args.config))), flush=True)
        return
    cfg = {
        "rows": args.steps * args.batch, "steps": args.steps, "batch": args.batch,
        "max_len": args.max_len, "max_prompt": args.max_prompt, "lr": 5e-5, "beta": 0.1,
    }  # fmt: skip
    print("config:", json.dumps(cfg), flush=True)
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for variant in VARIANTS:  # interleaved: the machine's load hits both alike
            cmd = [sys.executable, __file__, "--child", variant, "--config", json.dumps(cfg)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{variant} run {r + 1} failed:\n{out.stderr[-3000:]}")
            result = json.loads(line[len("RESULT ") :])
            runs[variant].append(result)
            print(f"run {r + 1} {variant}: {json.dumps(result)}", flush=True)
    table(runs)


def table(runs: dict[str, list[dict]]) -> None:
    keys = ("tokens_per_s", "peak_rss_mb", "final_loss", "reward_accuracy", "train_s")
    med = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in runs.items()}
    print("\n| variant | tokens/s | peak RSS MB | final loss | reward accuracy | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for v, m in med.items():
        print(
            f"| {v} | {m['tokens_per_s']:.1f} | {m['peak_rss_mb']:.0f} | {m['final_loss']:.4f} "
            f"| {m['reward_accuracy']:.2f} | {m['train_s']:.1f} |"
        )
    a, b = med["chattune"], med["trl"]
    print(
        f"\nchattune / trl: tokens/s x{a['tokens_per_s'] / b['tokens_per_s']:.2f}, peak RSS "
        f"x{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}, final loss "
        f"{100 * (a['final_loss'] - b['final_loss']) / b['final_loss']:+.1f}%"
    )


if __name__ == "__main__":
    main()
