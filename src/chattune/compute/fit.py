"""Does a training job fit this machine? The estimate against the memory that is there, and
when it does not fit, the changes that would make it (LoRA, smaller r, bf16, shorter rows).

Used by ``chattune compute check`` and by the pipeline's ``validate`` stage, so both give
the same answer; nothing here imports torch unless the machine has a GPU driver.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chattune.catalog import sources
from chattune.catalog.assets import require
from chattune.compute.estimate import Architecture, MemoryEstimate, TrainingShape, estimate
from chattune.errors import NotFoundError, ValidationError


@dataclass(frozen=True)
class Room:
    """The memory one training process may use: a GPU's, or this machine's free RAM."""

    kind: str  # "local-gpu" or "local-cpu"
    gb: float
    """Per GPU (each process has its own), or free RAM that all processes share."""

    @property
    def shared(self) -> bool:
        return self.kind == "local-cpu"

    def __str__(self) -> str:
        return f"{self.gb} GB " + ("RAM available" if self.shared else "per GPU")


@dataclass(frozen=True)
class Fit:
    """An estimate against the room there is, with what would fit instead."""

    estimate: MemoryEstimate
    room: Room
    suggestions: list[str]

    @property
    def need_gb(self) -> float:
        e = self.estimate
        return e.total_gb if self.room.shared else e.per_process_gb

    @property
    def fits(self) -> bool:
        return self.need_gb <= self.room.gb

    def describe(self) -> str:
        """``~N GB (weights a, gradients b, optimizer c, activations d GB)``."""
        parts = ", ".join(f"{k} {_gb(v)}" for k, v in self.estimate.breakdown().items())
        many = f" for {self.estimate.processes} processes" if self.estimate.processes > 1 else ""
        return f"~{_gb(self.need_gb)} GB{many} ({parts} GB)"


def model_config(model: str) -> dict[str, Any]:
    """The model's ``config.json`` without loading (or downloading) weights: a folder's, a
    fetched offline asset's, the hub cache's, or the sizes a catalog card carries."""
    ref = sources.parse(model)
    if ref.folder is not None:
        return _read(ref.folder / "config.json")
    if ref.card is not None and ref.card.source.startswith("offline:"):
        return _read(require(ref.card.source.removeprefix("offline:")) / "config.json")
    assert ref.hub_id is not None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(ref.hub_id, "config.json")
    if isinstance(cached, str):
        return _read(Path(cached))
    card_config = ref.card.tags.get("config") if ref.card else None
    if isinstance(card_config, dict):
        return card_config
    raise NotFoundError(
        f"no config.json for {ref.display} on this machine (not in the hub cache)",
        "run a job's model_import once, or pass a local model folder",
    )


def room() -> Room:
    """Memory for training here: the smallest GPU's, else the RAM available right now."""
    gpus = gpu_memory_gb()
    if gpus:
        return Room("local-gpu", min(gpus))
    import psutil

    return Room("local-cpu", round(psutil.virtual_memory().available / 2**30, 1))


def gpu_memory_gb() -> list[float]:
    """Total memory of each CUDA GPU; ``[]`` without importing torch when no driver is there."""
    if not (Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))):
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return [round(p.total_memory / 2**30, 1) for p in props]


def check(arch: Architecture, shape: TrainingShape, where: Room) -> Fit:
    """The estimate for ``shape`` against ``where``; suggestions when it does not fit."""
    fit = Fit(estimate(arch, shape), where, [])
    if fit.fits:
        return fit
    return Fit(fit.estimate, where, suggestions(arch, shape, where))


def require_fit(model: str, shape: TrainingShape, where: Room | None = None) -> Fit:
    """The fit, or a :class:`ValidationError` naming the estimate, the room and what would
    fit (the validate stage's check)."""
    arch = Architecture.from_config(model_config(model))
    fit = check(arch, shape, where or room())
    if fit.fits:
        return fit
    method = f"LoRA r={shape.lora_r}" if shape.apply_lora else "full fine-tuning"
    hint = "; or ".join(fit.suggestions) + " would fit" if fit.suggestions else ""
    raise ValidationError(
        f"parameters: training {model} with {method}, precision {shape.precision}, batch "
        f"{shape.per_device_train_batch_size} x {fit.estimate.seq_length} tokens needs "
        f"{fit.describe()}; this machine has {fit.room}",
        hint or f"use a machine with at least {_gb(fit.need_gb)} GB",
    )


def suggestions(arch: Architecture, shape: TrainingShape, where: Room) -> list[str]:
    """Single changes that make the job fit, each with its estimate; else all of them at once."""
    tries: list[tuple[str, TrainingShape]] = []
    if not shape.apply_lora:
        tries.append(("apply_lora: true", shape.but(apply_lora=True)))
    if shape.apply_lora and shape.lora_r > 1:
        r = _largest(lambda r: shape.but(lora_r=r), arch, where, 1, shape.lora_r - 1)
        if r:
            tries.append((f"lora_r: {r}", shape.but(lora_r=r)))
    if shape.precision == "32":
        tries.append(("precision: bf16", shape.but(precision="bf16")))
    seq = estimate(arch, shape).seq_length
    if seq > 64:
        s = _largest(lambda s: shape.but(max_seq_length=s), arch, where, 64, seq - 1)
        if s:
            tries.append((f"max_seq_length: {s}", shape.but(max_seq_length=s)))
    if shape.per_device_train_batch_size > 1:
        tries.append(("per_device_train_batch_size: 1", shape.but(per_device_train_batch_size=1)))
    fitting = [(text, s) for text, s in tries if _fits(arch, s, where)]
    if not fitting and len(tries) > 1:  # no single change is enough: all of them together
        together = shape.but(**{k: v for _, s in tries for k, v in _changes(shape, s).items()})
        if _fits(arch, together, where):
            fitting = [(", ".join(text for text, _ in tries), together)]
    return [f"{text} (~{_gb(Fit(estimate(arch, s), where, []).need_gb)} GB)" for text, s in fitting]


def _fits(arch: Architecture, shape: TrainingShape, where: Room) -> bool:
    return Fit(estimate(arch, shape), where, []).fits


def _changes(old: TrainingShape, new: TrainingShape) -> dict[str, Any]:
    return {k: v for k, v in asdict(new).items() if asdict(old)[k] != v}


def _largest(make: Any, arch: Architecture, where: Room, low: int, high: int) -> int | None:
    """The largest power of two in [low, high] whose shape fits (memory grows with the
    value), so the suggestion leaves room rather than landing on the last free byte."""
    if low > high or not _fits(arch, make(low), where):
        return None
    floor = low
    while low < high:
        mid = (low + high + 1) // 2
        if _fits(arch, make(mid), where):
            low = mid
        else:
            high = mid - 1
    return max(1 << (low.bit_length() - 1), floor)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotFoundError(
            f"model config {path}: {type(exc).__name__}", "point to a transformers model folder"
        ) from exc


def _gb(value: float) -> str:
    return f"{value:,.1f}" if value >= 0.1 else f"{value:.2f}"
