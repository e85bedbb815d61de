"""Claim: on a GPU too, chattune's finetune stage trains faster than TRL's SFTTrainer.

The GPU side of ``train_vs_trl.py``: the same runs (``train_run.py``, each in its own
process, the same ultrachat-sample rows, model, max length, batch and one epoch), in bf16 on
the first CUDA device. TRL at its GPU defaults (bf16, gradient checkpointing on), with
packing, and with packing and gradient checkpointing off (its fastest settings); chattune
with ``precision: bf16``. Printed per run: tokens/s, trained tokens, MFU against a bf16
matmul peak measured in this invocation, peak GPU memory (``max_memory_allocated``), train
and eval loss; the ratios last.

    .venv/bin/python benchmarks/train_vs_trl_gpu.py [--rows 512] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import time

from train_vs_trl import SMOL, compare

VARIANTS = ("chattune bf16", "trl defaults bf16", "trl packing bf16", "trl packing bf16 no ckpt")


def cases(rows: int) -> list[dict]:
    return [
        {"model": SMOL, "lora": lora, "max_len": 1024, "batch": 16, "rows": rows, "device": "cuda"}
        for lora in (True, False)
    ]


def matmul_peak(n: int = 8192, tries: int = 10) -> float:
    """GFLOP/s of the mean of ``tries`` bf16 n x n matmuls on the GPU, after a warm-up."""
    import torch

    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(tries):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * tries / (time.perf_counter() - start) / 1e9


def table(rows: list[dict], peak: float) -> None:
    import torch

    gpu = torch.cuda.get_device_name(0)
    print(f"\nGPU: {gpu}; bf16 matmul peak measured now {peak:.0f} GFLOP/s")
    print(
        f"{'case':<34}{'variant':<26}{'tok/s':>9}{'trained':>9}{'MFU':>6}{'GPU MB':>8}"
        f"{'train':>8}{'eval':>8}"
    )
    for r in rows:
        case = f"{r['model']} {'LoRA' if r['lora'] else 'full'} len {r['max_len']} b {r['batch']}"
        mfu = r["flops"] / r["seconds"] / 1e9 / peak
        print(
            f"{case:<34}{r['variant']:<26}{r['tokens_per_s']:>9.0f}{r['trained_tokens']:>9}"
            f"{mfu:>6.0%}{r['peak_gpu_mb']:>8.0f}{r['train_loss']:>8.3f}{r['eval_loss']:>8.3f}"
        )
    print("\nratios (tokens/s, peak GPU memory): chattune over each TRL variant")
    for lora in (True, False):
        mine = [r for r in rows if r["lora"] == lora and r["variant"].startswith("chattune")]
        for a in mine:
            for b in (r for r in rows if r["lora"] == lora and r["variant"].startswith("trl")):
                print(
                    f"{'LoRA' if lora else 'full'}: {a['variant']} / {b['variant']}: "
                    f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x speed, "
                    f"{a['peak_gpu_mb'] / b['peak_gpu_mb']:.2f}x memory"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=512, help="training conversations per run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    peak = matmul_peak()
    rows = compare(cases(args.rows), tuple(args.variants.split(",")), args.repeats)
    table(rows, max(peak, matmul_peak()))
    print(json.dumps({"peak_gflops": peak, "rows": rows}))


if __name__ == "__main__":
    main()
