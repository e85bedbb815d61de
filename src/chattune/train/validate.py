"""Stage `validate`: the data, model and compute are usable before anything expensive runs."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from chattune.catalog import sources
from chattune.errors import ValidationError
from chattune.jobs.context import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """Parse the model reference, read and check every data file; return counts and hashes."""
    from chattune.data.readers import load_conversations

    ref = sources.parse(ctx.spec.model)
    counts, hashes = {}, {}
    for split, path in ctx.spec.data.model_dump().items():
        if path is None:
            continue
        convs = load_conversations(path)
        if split == "train" and not convs:
            raise ValidationError(f"data.train {path}: no conversations", "point to chat data")
        counts[split] = len(convs)
        hashes[split] = file_digest(Path(path))
        ctx.log.info("data.%s: %d conversations (%s)", split, len(convs), path)
    _check_gpus(ctx)
    ctx.log.info("model: %s", ref.display)
    return {"model": ref.display, "rows": counts, "data_sha256": hashes}


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order (stage cache keys use it)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _check_gpus(ctx: StageContext) -> None:
    """Settings that need CUDA fail here, in one line, not deep inside the trainer."""
    p = ctx.params
    wants = []
    if p.apply_deepspeed:
        wants.append("apply_deepspeed")
    if (p.number_of_gpu_to_use_finetuning or 0) > 1 or p.num_nodes_finetune > 1:
        wants.append("number_of_gpu_to_use_finetuning/num_nodes_finetune")
    if p.precision in ("16", "bf16"):
        wants.append(f"precision {p.precision}")
    if not wants:
        return
    import torch

    if not torch.cuda.is_available():
        raise ValidationError(
            f"parameters {', '.join(wants)} need a CUDA GPU, and this machine has none",
            "set precision: 32, apply_deepspeed: false, number_of_gpu_to_use_finetuning unset",
        )
    if p.apply_deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise ValidationError(
            "parameters.apply_deepspeed needs the deepspeed package, which is not installed",
            "pip install deepspeed, or set apply_deepspeed: false",
        )
    if (p.number_of_gpu_to_use_finetuning or 0) > 1 or p.num_nodes_finetune > 1:
        # One process trains on one GPU; the torchrun/accelerate launcher is not wired yet.
        raise ValidationError(
            "parameters.number_of_gpu_to_use_finetuning / num_nodes_finetune > 1: multi-GPU "
            "launch is not available yet",
            "leave them unset to train on one GPU",
        )
