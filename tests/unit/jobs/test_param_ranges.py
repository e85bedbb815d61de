"""Every numeric parameter has a range; a value outside it is refused naming key and range."""

from pathlib import Path

import pytest

from chattune.errors import ValidationError
from chattune.jobs.spec import load_spec, parse_spec


def _refused(params: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as err:
        parse_spec({"model": "m", "data": {"train": "t"}, "parameters": params})
    return str(err.value)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"learning_rate": float("inf")}, "parameters.learning_rate: must be a finite number"),
        ({"learning_rate": float("nan")}, "parameters.learning_rate: must be a finite number"),
        ({"learning_rate": 0}, "parameters.learning_rate: 0 is out of range: allowed > 0"),
        ({"max_steps": 0}, "parameters.max_steps: 0 is out of range: allowed -1 (use "),
        ({"max_steps": 1e20}, "parameters.max_steps: 100000000000000000000 is out of range"),
        ({"max_seq_length": 0}, "parameters.max_seq_length: 0 is out of range: allowed -1"),
        ({"max_seq_length": -7}, "parameters.max_seq_length: -7 is out of range"),
        ({"max_seq_length": 4}, "allowed -1 (the model's maximum) or 8 to 1048576"),
        ({"seed": 1e20}, "parameters.seed: 100000000000000000000 is out of range: allowed 0 to"),
        ({"seed": -1}, "parameters.seed: -1 is out of range: allowed 0 to 4294967295"),
        ({"num_train_epochs": float("inf")}, "parameters.num_train_epochs: must be a finite"),
        ({"weight_decay": float("inf")}, "parameters.weight_decay: must be a finite number"),
        ({"max_grad_norm": float("nan")}, "parameters.max_grad_norm: must be a finite number"),
        ({"warmup_steps": 1e12}, "parameters.warmup_steps: 1000000000000 is out of range"),
        ({"save_total_limit": 0}, "parameters.save_total_limit: 0 is out of range: allowed -1"),
        ({"logging_steps": 0}, "parameters.logging_steps: 0 is out of range: allowed 1 to"),
        ({"lora_r": 0}, "parameters.lora_r: 0 is out of range: allowed 1 to"),
        ({"metric_for_best_model": "accuracy"}, "parameters.metric_for_best_model: "),
    ],
)
def test_out_of_range_values_are_refused_naming_key_and_range(params, expected) -> None:
    assert expected in _refused(params)


def test_metric_for_best_model_lists_the_metrics_training_eval_produces() -> None:
    text = _refused({"metric_for_best_model": "accuracy"})
    assert "'loss'" in text and "'perplexity'" in text and "'token_accuracy'" in text


def test_a_range_error_in_a_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("model: m\ndata:\n  train: t\nparameters:\n  lora_r: 2\n  seed: 1e20\n")
    with pytest.raises(ValidationError) as err:
        load_spec(bad)
    assert str(err.value).startswith(f"{bad}:6: parameters.seed: 100000000000000000000 is out")


@pytest.mark.parametrize(
    "params",
    [
        {"max_steps": -1},
        {"max_steps": 1},
        {"max_seq_length": -1},
        {"max_seq_length": 8},
        {"seed": 0},
        {"seed": 2**32 - 1},
        {"learning_rate": 1e30},  # finite: the non-finite loss watchdog stops it in training
        {"save_total_limit": -1},
        {"save_total_limit": 2},
        {"metric_for_best_model": "perplexity"},
        {"metric_for_best_model": "token_accuracy"},
    ],
)
def test_values_in_range_pass(params) -> None:
    spec = parse_spec({"model": "m", "data": {"train": "t"}, "parameters": params})
    for key, value in params.items():
        assert getattr(spec.parameters, key) == value
