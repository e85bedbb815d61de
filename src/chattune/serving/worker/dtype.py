"""``dtype: auto``: float32 or bf16 for a model on this machine, measured once and cached.

On a CPU the faster of the two depends on the CPU (bf16 matmuls are about twice as fast with
AMX/AVX512-BF16, much slower without) and a little on the model, so ``auto`` times a forward
pass both ways. Under load that took minutes per worker start; the decision is now kept in
``$CHATTUNE_CACHE/serving/dtype.json`` (default cache: ``~/.cache/chattune``) keyed by the
model (its folder, ``config.json`` and weight files' sizes and times) and the machine (CPU
model and flags, torch version), so later starts of the same model on the same machine reuse
it. Delete the file to measure again.

>>> key = cache_key("models/demo/1")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from chattune.workspace import write_atomic

log = logging.getLogger("chattune.serving.engine")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def cache_file() -> Path:
    """``$CHATTUNE_CACHE/serving/dtype.json`` (default cache: platformdirs' user cache)."""
    root = os.environ.get("CHATTUNE_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("chattune"))
    return base / "serving" / "dtype.json"


def cpu_signature() -> str:
    """The CPU model and its flags (``/proc/cpuinfo``), else what ``platform`` says."""
    found: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features") and key not in found:
                found[key] = value.strip()
    except OSError:
        pass
    return json.dumps(found or {"processor": platform.processor()}, sort_keys=True)


def cache_key(model_path: str | Path) -> str:
    """What the decision depends on: the model's files and this machine, hashed."""
    import torch

    folder = Path(model_path).resolve()
    files = sorted(
        p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"
    )
    described = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    facts = [str(folder), described, cpu_signature(), platform.machine(), torch.__version__]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def choose_dtype(
    model: Any, setting: str, device: str, model_path: str | Path | None = None
) -> tuple[str, str]:
    """``float32`` or ``bfloat16`` for ``model`` on ``device``, and why (for the log).

    ``auto`` takes bf16 on GPUs; on a CPU the cached decision for this model and machine,
    else the faster of the two measured now (and cached when ``model_path`` is given).
    """
    if setting != "auto":
        return setting, "set by the deployment's dtype setting"
    if device.startswith("cuda"):
        return "bfloat16", "GPU"
    key = cache_key(model_path) if model_path is not None else None
    cached = _read().get(key) if key else None
    if isinstance(cached, dict) and cached.get("dtype") in ("float32", "bfloat16"):
        return cached["dtype"], (
            f"cached for this model and CPU in {cache_file()} ({cached.get('measured', '?')}); "
            "delete the file to measure again"
        )
    best, measured = _measure(model)
    why = f"measured on this CPU, a forward pass of 8x32 tokens: {measured}"
    if key:
        _write(key, {"dtype": best, "measured": measured, "at": time.time()})
        why += f"; cached in {cache_file()}"
    return best, why


def _measure(model: Any) -> tuple[str, str]:
    """The faster dtype for a batched forward pass of ``model`` and the timings."""
    import torch

    ids = torch.full((8, 32), 1, dtype=torch.long)
    timings = {}
    for name in ("float32", "bfloat16"):
        model.to(getattr(torch, name))
        with torch.inference_mode():
            model(input_ids=ids)  # warm-up
            started = time.perf_counter()
            for _ in range(2):
                model(input_ids=ids)
        timings[name] = (time.perf_counter() - started) / 2
    best = min(timings, key=lambda k: timings[k])
    return best, ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())


def _read() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure (and rewrite it)
        return {}
    return data if isinstance(data, dict) else {}


def _write(key: str, entry: dict[str, Any]) -> None:
    try:
        write_atomic(cache_file(), json.dumps(_read() | {key: entry}, indent=1))
    except OSError as exc:  # a read-only cache: the decision holds for this start only
        log.warning("dtype decision not cached (%s)", exc)
