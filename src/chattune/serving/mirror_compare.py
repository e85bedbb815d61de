"""Mirror comparison: what the live and the mirror deployment answered to the same requests.

>>> client.endpoints.keep_mirror_pairs("my-ep", keep=500, days=7)   # opt in (0: off)
>>> client.endpoints.compare("my-ep")["agreement"]["exact"]

The gateway keeps the pairs (serving/pairs.py) only while the endpoint opts in.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from chattune.errors import ValidationError
from chattune.serving.pairs import SETTINGS_FILE, read_settings
from chattune.workspace import write_atomic

MAX_KEEP = 100_000


def set_pairs(folder: Path, keep: int, days: float) -> dict[str, Any]:
    """Opt in (``keep`` > 0) or out (0) of keeping mirror pairs for the endpoint."""
    if keep < 0 or keep > MAX_KEEP or days <= 0:
        raise ValidationError(
            f"mirror pairs: keep {keep}, days {days} out of range",
            f"use --keep 1..{MAX_KEEP} (0 turns it off) and --days > 0",
        )
    path = folder / SETTINGS_FILE
    if keep == 0:
        path.unlink(missing_ok=True)
        return {"keep": 0, "days": days}
    write_atomic(path, json.dumps({"keep": keep, "days": days}))
    return {"keep": keep, "days": days}


def pair_settings(folder: Path) -> dict[str, Any] | None:
    found = read_settings(folder)
    return None if found is None else {"keep": found.keep, "days": found.days}


def summarize(pairs: list[dict[str, Any]], samples: int = 3) -> dict[str, Any]:
    """Latency percentiles and error rates per side, answer agreement (exact, ROUGE-L)
    where both answered, and the newest ``samples`` pairs."""
    out: dict[str, Any] = {"pairs": len(pairs)}
    for side in ("live", "mirror"):
        sides = [p[side] for p in pairs if side in p]
        out[side] = {
            "deployments": sorted({p.get(f"{side}_deployment", "") for p in pairs}),
            "latency_s": percentiles([s["latency_s"] for s in sides]),
            "error_rate": _rate([s.get("status") != 200 for s in sides]),
        }
    both = [p for p in pairs if p["live"].get("status") == 200 and p["mirror"].get("status") == 200]
    live = [p["live"]["answer"] for p in both]
    mirror = [p["mirror"]["answer"] for p in both]
    agreement: dict[str, float | None] = {"compared": float(len(both)), "exact": None}
    agreement["rouge_l"] = None
    if both:
        from chattune.train.generation import metrics

        agreement["exact"] = _rate(
            [a.strip() == b.strip() for a, b in zip(live, mirror, strict=True)]
        )
        agreement["rouge_l"] = round(metrics(mirror, live)["rouge_l"], 4)
    out["agreement"] = agreement
    out["samples"] = [
        {"live": p["live"]["answer"], "mirror": p["mirror"]["answer"]} for p in pairs[-samples:]
    ]
    return out


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 4), "p90": round(cuts[89], 4), "p99": round(cuts[98], 4)}


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None
