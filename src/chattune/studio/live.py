"""What a running job costs and how far it is: CPU and memory of its process tree (psutil,
CPU as a rate between two looks) and the ETA of its finetune stage from its progress."""

from __future__ import annotations

import time
from typing import Any

import psutil

# pid → (monotonic time, CPU seconds) at the last look: CPU % is the rate between looks.
_seen: dict[int, tuple[float, float]] = {}


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def usage(pid: int | None) -> dict[str, Any] | None:
    """CPU % (100 = one core) and resident memory of ``pid`` and its children; None when
    it is gone or not on this machine."""
    if pid is None:
        return None
    try:
        procs = _tree(pid)
    except psutil.Error:
        return None
    cpu = rss = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.Error:
            continue  # a child that just ended
    now = time.monotonic()
    before = _seen.get(pid)
    _seen[pid] = (now, cpu)
    rate = (cpu - before[1]) / (now - before[0]) * 100 if before and now > before[0] else None
    memory = psutil.virtual_memory()
    return {
        "cpu_percent": None if rate is None else round(max(rate, 0.0), 1),
        "cores": psutil.cpu_count() or 1,
        "rss_mb": round(rss / 2**20, 1),
        "processes": len(procs),
        "ram_used_percent": memory.percent,
        "ram_total_mb": round(memory.total / 2**20),
    }


def eta(progress: dict[str, Any], stage_started: float | None) -> dict[str, Any]:
    """``progress`` with ``fraction`` and ``eta_s`` when it counts steps of a total."""
    step, total = progress.get("step"), progress.get("total")
    if not isinstance(step, int | float) or not isinstance(total, int | float) or total <= 0:
        return progress
    found = {**progress, "fraction": min(step / total, 1.0)}
    if stage_started and step > 0:
        spent = time.time() - stage_started
        found["eta_s"] = round(spent * (total - step) / step, 1)
    return found
