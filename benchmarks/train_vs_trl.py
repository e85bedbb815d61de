"""Claim: chattune's finetune stage trains faster than TRL's SFTTrainer, in less memory.

Same ultrachat-sample rows, model, max length, batch and one epoch over those rows; each run
in its own process (so its peak RSS is its own), variants interleaved (A, B, A, B...), the
median per variant. chattune runs its finetune stage's own functions (preprocess.run,
finetune.load_trainable, finetune.build_trainer, Trainer.train); TRL runs ``SFTTrainer`` at
its defaults, with packing, and with packing + bf16; "chattune plain loss" is chattune
with the model's own loss instead of the chunked one (the chunked loss's before/after).
Printed per run: tokens/s (non-padding
input tokens; the same conversations, truncated alike, so the same tokens for every
variant), trained tokens (label != -100; TRL trains on every token of a conversation, chattune
on the assistant's), peak RSS, train loss, eval loss on the same held-out conversations
(chattune's score(): assistant tokens), MFU against fp32 and bf16 matmul peaks measured in
this invocation (FLOPs: 6 x parameters x tokens full, 4 x for LoRA, plus causal
attention's 6 x layers x hidden x max length x tokens: train_run.model_flops); ratios last.

    .venv/bin/python benchmarks/train_vs_trl.py --quick      # < 10 min on 2 cores
    .venv/bin/python benchmarks/train_vs_trl.py --full       # every case, 3 repeats
    .venv/bin/python benchmarks/train_vs_trl.py --scaling [--full]   # SmolLM2 LoRA scaling
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TINY, SMOL = "tiny-random-phi3", "SmolLM2-135M-Instruct"
CHATTUNE = ("chattune", "chattune plain loss", "chattune bf16")
TRL = ("trl defaults", "trl packing", "trl packing bf16")
QUICK = [
    {"model": TINY, "lora": False, "max_len": 512, "batch": 8, "rows": 64},
    {"model": SMOL, "lora": True, "max_len": 512, "batch": 4, "rows": 8},
]
FULL = [
    {"model": TINY, "lora": False, "max_len": n, "batch": 8, "rows": 128} for n in (512, 1024)
] + [
    {"model": SMOL, "lora": lora, "max_len": n, "batch": 4, "rows": 24}
    for lora in (True, False)
    for n in (512, 1024)
]


def matmul_peak(dtype_name: str, n: int = 1024, tries: int = 5) -> float:
    """GFLOP/s of the best of ``tries`` square matmuls in ``dtype_name`` on this machine now."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(tries))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_child(case: dict, variant: str) -> dict:
    """One run in a fresh process (same niceness as this one): its result line as a dict."""
    spec = json.dumps({**case, "variant": variant})
    cmd = [sys.executable, str(Path(__file__).with_name("train_run.py")), spec]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode or not lines:
        return {"variant": variant, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def compare(cases: list[dict], variants: tuple[str, ...], repeats: int) -> list[dict]:
    """Every case: its variants interleaved ``repeats`` times; the median run per variant."""
    rows = []
    for case in cases:
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(repeats):
            for variant in variants:
                result = run_child(case, variant)
                print(json.dumps({**case, **result}), flush=True)
                if "error" not in result:
                    runs[variant].append(result)
        for done in runs.values():
            if done:
                median = statistics.median(r["tokens_per_s"] for r in done)
                best = min(done, key=lambda r: abs(r["tokens_per_s"] - median))
                rows.append({**case, **best, "tokens_per_s": median, "repeats": len(done)})
    return rows


def table(rows: list[dict], peaks: dict[str, float]) -> None:
    """The results table, then each case's ratios of chattune over each TRL variant."""
    print(
        f"\nmatmul peak measured now: fp32 {peaks['float32']:.0f}, bf16 "
        f"{peaks['bfloat16']:.0f} GFLOP/s"
    )
    head = f"{'case':<40}{'variant':<22}{'tok/s':>8}{'trained':>9}{'MFU32':>7}{'MFU16':>7}"
    print(head + f"{'RSS MB':>8}{'train':>8}{'eval':>8}")
    for r in rows:
        gflops = r["flops"] / r["seconds"] / 1e9
        print(
            f"{_case(r):<40}{r['variant']:<22}{r['tokens_per_s']:>8.1f}{r['trained_tokens']:>9}"
            f"{gflops / peaks['float32']:>7.0%}{gflops / peaks['bfloat16']:>7.0%}"
            f"{r['peak_rss_mb']:>8.0f}{r['train_loss']:>8.3f}{r['eval_loss']:>8.3f}"
        )
    print("\nratios (tokens/s, peak RSS): chattune variant over TRL variant")
    for case in {_case(r) for r in rows}:
        mine = [r for r in rows if _case(r) == case and r["variant"].startswith("chattune")]
        theirs = [r for r in rows if _case(r) == case and r["variant"].startswith("trl")]
        for a in mine:
            for b in theirs:
                print(
                    f"{case:<40}{a['variant']} / {b['variant']}: "
                    f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x speed, "
                    f"{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x RSS"
                )


def _case(r: dict) -> str:
    return f"{r['model']} {'LoRA' if r['lora'] else 'full'} len {r['max_len']} b {r['batch']}"


def scaling(quick: bool, max_step_tokens: int) -> None:
    """SmolLM2 LoRA over max length x batch: seconds per step and peak RSS; the PNG.

    Steps over ``max_step_tokens`` tokens are skipped: LoRA activations take about 2.7 MB
    a token in float32 (4 x 1,024 tokens: 11.4 GB), more than a small machine holds."""
    lengths = [256, 512, 1024, 2048]
    batches, steps = ([1, 4], 1) if quick else ([1, 4, 16], 3)
    points = []
    for batch in batches:
        for n in lengths:
            case = {"model": SMOL, "lora": True, "max_len": n, "batch": batch, "steps": steps}
            if batch * n > max_step_tokens:
                print(f"skipped batch {batch} x {n}: over --max-step-tokens {max_step_tokens}")
                continue
            r = run_child(case, "scaling")
            print(json.dumps({**case, **r}), flush=True)
            if "error" not in r:
                points.append(r | {"batch": batch, "max_len": n})
    print(f"\n{'batch':>6}{'max len':>9}{'s/step':>9}{'tokens/s':>10}{'peak RSS MB':>13}")
    for p in points:
        print(
            f"{p['batch']:>6}{p['max_len']:>9}{p['seconds_per_step']:>9.2f}"
            f"{p['tokens_per_s']:>10.1f}{p['peak_rss_mb']:>13.0f}"
        )
    plot(points, "docs/train-scaling.png")


def plot(points: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for batch in sorted({p["batch"] for p in points}):
        mine = [p for p in points if p["batch"] == batch]
        xs = [p["max_len"] for p in mine]
        left.plot(xs, [p["seconds_per_step"] for p in mine], "o-", label=f"batch {batch}")
        right.plot(xs, [p["peak_rss_mb"] for p in mine], "o-", label=f"batch {batch}")
    left.set(xlabel="max length (tokens per row)", ylabel="seconds per step")
    right.set(xlabel="max length (tokens per row)", ylabel="peak RSS (MB)")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("chattune, SmolLM2-135M-Instruct LoRA r8, float32, one step, 2-core CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="two cases, one repeat (default)")
    size.add_argument("--full", action="store_true", help="every case, three repeats")
    parser.add_argument(
        "--scaling", action="store_true", help="SmolLM2 LoRA over length x batch (--full: to 16)"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--max-step-tokens", type=int, default=4096, help="--scaling bound")
    parser.add_argument("--variants", default=",".join(CHATTUNE + TRL))
    args = parser.parse_args()
    if args.scaling:
        scaling(not args.full, args.max_step_tokens)
        return
    peaks = {d: matmul_peak(d) for d in ("float32", "bfloat16")}
    repeats = args.repeats or (3 if args.full else 1)
    rows = compare(FULL if args.full else QUICK, tuple(args.variants.split(",")), repeats)
    peaks = {d: max(peaks[d], matmul_peak(d)) for d in peaks}  # again, after: the best
    table(rows, peaks)


if __name__ == "__main__":
    main()
