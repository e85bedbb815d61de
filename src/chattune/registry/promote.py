"""Promotion gates: a label moves to a version only when its compared metrics hold up.

A gate reads ``METRIC OP OPERAND``: the left side is the candidate's metric; the right side
a number, or ``current.METRIC`` (the version holding the label now) or ``base.METRIC`` (the
candidate's base model). The default gates: not worse than the current holder, better than
the base, on test loss.

>>> parse_gate("test_loss <= base.test_loss")
Gate(metric='test_loss', op='<=', other='base', other_metric='test_loss', number=None, ...)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from chattune.errors import ValidationError

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
METRICS = (
    "test_loss",
    "test_perplexity",
    "test_token_accuracy",
    "rouge_l",
    "bleu",
    "latency_s",
    "answer_tokens",
)
GENERATION_METRICS = {"rouge_l", "bleu", "latency_s", "answer_tokens"}
DEFAULT_GATES = ("test_loss <= current.test_loss", "test_loss < base.test_loss")
_GATE = re.compile(
    r"\s*(?P<metric>\w+)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?:(?P<other>current|base)\.(?P<other_metric>\w+)|(?P<number>[-+0-9.eE]+))\s*"
)


@dataclass(frozen=True)
class Gate:
    """One condition on the candidate's metrics."""

    metric: str
    op: str
    other: str | None
    """``current``, ``base``, or None for a number."""
    other_metric: str | None
    number: float | None
    text: str

    @property
    def needs_generation(self) -> bool:
        return bool({self.metric, self.other_metric} & GENERATION_METRICS)


def parse_gate(text: str) -> Gate:
    """``"test_loss <= base.test_loss"`` → a Gate; a malformed gate says what is allowed."""
    found = _GATE.fullmatch(text)
    metrics = [found["metric"], found["other_metric"]] if found else []
    unknown = [m for m in metrics if m and m not in METRICS]
    if found is None or unknown:
        raise ValidationError(
            f"--gate {text!r}: "
            + (f"unknown metric {unknown[0]}" if unknown else "not METRIC OP OPERAND"),
            f'e.g. "test_loss <= current.test_loss"; metrics: {", ".join(METRICS)}; '
            "operands: a number, current.METRIC, base.METRIC",
        )
    number = float(found["number"]) if found["number"] else None
    return Gate(
        found["metric"], found["op"], found["other"], found["other_metric"], number, text.strip()
    )


@dataclass(frozen=True)
class Verdict:
    """A gate's outcome: held or not, the two values, and by how much it missed."""

    gate: Gate
    held: bool
    value: float
    bound: float | None
    """The right side's value; None when its model is not there (no current holder)."""

    def describe(self) -> str:
        if self.bound is None:
            return f"{self.gate.text}: skipped (no {self.gate.other} version)"
        gap = self.value - self.bound
        rel = f", {gap / self.bound:+.1%}" if self.bound else ""
        state = "held" if self.held else "failed"
        return f"{self.gate.text} {state}: {self.value:.4g} vs {self.bound:.4g} ({gap:+.4g}{rel})"


def judge(gate: Gate, metrics: dict[str, dict[str, float]]) -> Verdict:
    """Gate ``gate`` over ``metrics`` (``candidate``, ``current``, ``base``: name → value)."""
    value = metrics["candidate"][gate.metric]
    if gate.number is not None:
        bound: float | None = gate.number
    else:
        assert gate.other is not None and gate.other_metric is not None
        other = metrics.get(gate.other)
        bound = other.get(gate.other_metric) if other else None
    if bound is None:  # nothing to compare with (no version holds the label yet): holds
        return Verdict(gate, True, value, None)
    return Verdict(gate, OPS[gate.op](value, bound), value, bound)


@dataclass
class Promotion:
    """What ``models promote`` decided, and why."""

    ref: str
    label: str
    promoted: bool
    forced: bool
    verdicts: list[Verdict]
    metrics: dict[str, dict[str, float]]
    current: str | None
    base: str | None

    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.held]

    def reason(self) -> str:
        """One line: the gates that failed and by how much (or that all held)."""
        bad = self.failed()
        if not bad:
            return "; ".join(v.describe() for v in self.verdicts) or "no gates"
        return "; ".join(v.describe() for v in bad)

    def to_dict(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "label": self.label,
            "promoted": self.promoted,
            "forced": self.forced,
            "reason": self.reason(),
            "gates": [
                {"gate": v.gate.text, "held": v.held, "value": v.value, "bound": v.bound}
                for v in self.verdicts
            ],
            "metrics": self.metrics,
            "current": self.current,
            "base": self.base,
        }
