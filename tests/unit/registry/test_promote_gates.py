"""Promotion gates: parsing, judging, and the one-line reason of a refusal."""

from __future__ import annotations

import pytest

from chattune.errors import ValidationError
from chattune.registry.promote import DEFAULT_GATES, Promotion, judge, parse_gate


def test_parse_gate_reads_metric_operator_and_operand() -> None:
    gate = parse_gate(" test_loss <= base.test_loss ")
    assert (gate.metric, gate.op, gate.other, gate.other_metric) == (
        "test_loss",
        "<=",
        "base",
        "test_loss",
    )
    assert parse_gate("rouge_l >= 0.2").number == 0.2
    assert parse_gate("rouge_l >= 0.2").needs_generation
    assert not parse_gate(DEFAULT_GATES[0]).needs_generation


@pytest.mark.parametrize("text", ["loss <= base.loss", "test_loss ~ 3", "test_loss <= prod.x"])
def test_a_malformed_gate_is_one_line_with_what_is_allowed(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_gate(text)
    assert "\n" not in str(err.value) and "current.METRIC" in err.value.hint


def test_judge_and_reason_say_which_gate_failed_and_by_how_much() -> None:
    metrics = {
        "candidate": {"test_loss": 2.2},
        "current": {"test_loss": 2.0},
        "base": {"test_loss": 3.0},
    }
    verdicts = [judge(parse_gate(g), metrics) for g in DEFAULT_GATES]
    assert [v.held for v in verdicts] == [False, True]
    result = Promotion("m:2", "production", False, False, verdicts, metrics, "m:1", "base")
    reason = result.reason()
    assert reason.startswith("test_loss <= current.test_loss failed: 2.2 vs 2 (+0.2, +10.0%)")
    assert "base" not in reason  # only the failed gate


def test_a_gate_without_its_model_holds() -> None:
    verdict = judge(parse_gate("test_loss <= current.test_loss"), {"candidate": {"test_loss": 1}})
    assert verdict.held and "skipped" in verdict.describe()
