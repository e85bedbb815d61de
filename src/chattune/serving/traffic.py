"""Names and traffic rules of an endpoint, as pure functions (the logic that must be right).

The SDK checks names and weights before it writes them; the gateway picks with them.

Azure ML semantics: live ``traffic`` weights are whole percents that sum to 100 (or are all
0: nothing is routed without a deployment header); ``mirror_traffic`` copies a share of live
requests (each ≤ 50, total ≤ 50) to deployments that get no live traffic, and their answers
are dropped.

>>> pick({"blue": 90, "green": 10}, draw=0.95)
'green'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from chattune.errors import ValidationError

NAME_PATTERN = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")  # fullmatch: `$` lets "x\n" in
MAX_MIRROR = 50


def check_name(kind: str, name: str) -> None:
    """Raise :class:`ValidationError` unless ``name`` is a valid endpoint/deployment name."""
    if not 3 <= len(name) <= 32 or not NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            f"{kind} name {name!r} is invalid: use 3-32 letters, digits or '-', starting with "
            "a letter and not ending with '-'",
            f"pick a name like 'my-{kind}'",
        )


def traffic_problems(
    traffic: Mapping[str, int], mirror: Mapping[str, int], deployments: Iterable[str]
) -> list[str]:
    """Every problem of a traffic/mirror assignment over the endpoint's ``deployments``."""
    known = set(deployments)
    problems: list[str] = []
    for label, weights in (("traffic", traffic), ("mirror_traffic", mirror)):
        for name, weight in weights.items():
            if name not in known:
                choices = ", ".join(sorted(known)) or "none yet"
                problems.append(f"{label}: unknown deployment {name!r} (deployments: {choices})")
            if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
                problems.append(
                    f"{label}[{name}]: weight must be a whole number 0-100, got {weight!r}"
                )
    if problems:
        return problems
    total = sum(traffic.values())
    if total not in (0, 100):
        problems.append(f"traffic: weights sum to {total}; they must sum to 100")
    mirrored = sum(mirror.values())
    if mirrored > MAX_MIRROR:
        problems.append(f"mirror_traffic: weights sum to {mirrored}; at most {MAX_MIRROR}")
    for name, weight in mirror.items():
        if weight > 0 and traffic.get(name, 0) > 0:
            problems.append(
                f"mirror_traffic[{name}]: {name} has live traffic; a deployment "
                "gets live or mirror traffic, not both"
            )
    if mirrored > 0 and total == 0:
        problems.append("mirror_traffic: nothing to mirror while no deployment has live traffic")
    return problems


def pick(weights: Mapping[str, int], draw: float) -> str | None:
    """The deployment a request goes to, for a uniform ``draw`` in [0, 1).

    Deployments with weight 0 are never picked; ``None`` when all weights are 0.
    """
    live = sorted((name, w) for name, w in weights.items() if w > 0)
    total = sum(w for _, w in live)
    if total == 0:
        return None
    point = draw * total
    upto = 0
    for name, weight in live:
        upto += weight
        if point < upto:
            return name
    return live[-1][0]  # draw == 1.0 or float rounding


def pick_mirror(mirror: Mapping[str, int], draw: float) -> str | None:
    """The deployment that gets a copy of a live request, or ``None`` (most requests).

    Weights are percents of all live requests (total ≤ 50), so one draw decides.
    """
    point = draw * 100
    upto = 0
    for name, weight in sorted(mirror.items()):
        upto += max(weight, 0)
        if point < upto:
            return name
    return None
