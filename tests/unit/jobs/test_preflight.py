"""Pre-flight estimate: scaling of the calibration's measurements, history correction, and
the record a job keeps of its predicted and actual resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chattune.jobs.calibrate import StepTimer, count_rows
from chattune.jobs.preflight import (
    Estimate,
    claim_estimate,
    correct,
    predict,
    record_estimate,
    shape_key,
    spec_digest,
)
from chattune.jobs.spec import parse_spec, resolve_parameters
from chattune.store import open_store
from chattune.store.resources import PREFLIGHT, ResourceStore


def _spec(**params: Any) -> Any:
    return parse_spec(
        {
            "name": "j",
            "model": "tiny-random-phi3",
            "data": {"train": "train.jsonl", "test": "test.jsonl"},
            "parameters": {"num_train_epochs": 1, **params},
        }
    )


def _measured(**changes: Any) -> dict[str, Any]:
    """A calibration result: 48 of 480 train rows (40 packed rows, 256 tokens each)."""
    m = {
        "rows": {"train": 480, "test": 40},
        "slice_rows": {"train": 48, "test": 4},
        "slice_examples": {"train": 48, "test": 4},
        "slice_train_rows": 40,
        "slice_train_tokens": 40 * 256,
        "max_seq_length": 256,
        "seconds_per_token": 0.001,
        "peak_rss_gb": 1.5,
        "eval_examples": 4,
        "generated_tokens": 8,
        "seconds": {
            "start": 2.0,
            "validate": 0.5,
            "validate_data": 0.1,
            "model_import": 3.0,
            "preprocess_fixed": 1.0,
            "preprocess": 2.0,
            "finetune_load": 4.0,
            "finetune_steps": 5.0,
            "finetune_save": 1.0,
            "eval_load": 1.0,
            "eval_score": 2.0,
            "eval_generate": 0.8,
            "package": 3.0,
        },
    }
    return m | changes


def test_steps_and_stage_times_scale_with_the_data() -> None:
    spec = _spec(per_device_train_batch_size=2, gradient_accumulation_steps=2)
    p = resolve_parameters(spec).params
    est = predict(spec, p, _measured(), reused=set())
    # 40 packed rows in 48 of 480 conversations -> 400 rows, 200 batches of 2, 100 steps.
    assert (est.steps_per_epoch, est.total_steps) == (100, 100)
    assert est.seconds_per_step == pytest.approx(0.001 * 256 * 4)
    assert est.stages["preprocess"] == pytest.approx(1.0 + 1.0 * (520 / 52))
    assert est.stages["validate"] == pytest.approx(0.5 + 0.1 * (520 / 52 - 1))
    # load + 100 steps + one evaluation of the 40 test rows (0.5 s each) + the final save
    assert est.stages["finetune"] == pytest.approx(4.0 + 100 * 1.024 + 40 * 0.5 + 1.0)
    # base and fine-tuned: load, 40 test rows, 16 prompts x 64 new tokens at 0.1 s/token-row
    rows, new = p.generation_eval_rows, p.generation_max_new_tokens
    assert est.stages["evaluate"] == pytest.approx(2 * (1.0 + 20.0 + 0.1 * rows * new))
    assert est.total_seconds == pytest.approx(sum(est.stages.values()))


def test_max_steps_and_reused_stages() -> None:
    spec = _spec(max_steps=7)
    p = resolve_parameters(spec).params
    est = predict(spec, p, _measured(), reused={"model_import", "preprocess"})
    assert est.total_steps == 7
    assert est.stages["model_import"] == 0 and est.stages["preprocess"] == 0


def test_history_corrects_each_stage_and_the_memory() -> None:
    spec = _spec()
    est = predict(spec, resolve_parameters(spec).params, _measured(), reused=set())
    before = dict(est.stages)
    past = [
        {
            "predicted": {"raw_stages": {"finetune": 10.0}, "raw_peak_rss_gb": 1.0},
            "actual": {"stages": {"finetune": 15.0}, "peak_rss_gb": 1.2},
        }
    ]
    correct(est, past)
    assert est.stages["finetune"] == pytest.approx(before["finetune"] * 1.5, rel=1e-3)
    assert est.stages["package"] == before["package"]
    assert est.peak_rss_gb == pytest.approx(1.5 * 1.2)
    assert est.history == 1


def test_shape_key_ignores_data_size_and_steps_but_not_the_shape() -> None:
    def key(**params: Any) -> str:
        spec = _spec(**params)
        return shape_key(spec, resolve_parameters(spec).params)

    assert key(num_train_epochs=1) == key(num_train_epochs=3, max_steps=9)
    assert key(lora_r=8) != key(lora_r=16)
    assert key(precision="32") != key(precision="bf16")


def test_estimate_is_kept_for_the_job_of_the_same_spec(tmp_path: Path) -> None:
    store = ResourceStore(open_store(f"sqlite:///{tmp_path / 'db.sqlite'}").db)
    spec = _spec()
    stored = spec.model_dump(mode="json", exclude_unset=True) | {"name": "j"}
    est = Estimate(
        "j", "tiny-random-phi3", "local", 3, 3, 1.0, 10.0, {"finetune": 3.0}, 1.0, None, 16.0, True
    )
    est.raw_stages = dict(est.stages)
    record_estimate(store, spec, stored, est)
    key = PREFLIGHT + spec_digest(stored)
    assert store.get(key) is not None
    # Another name, same spec: still the same estimate.
    assert spec_digest(stored | {"name": "other"}) == spec_digest(stored)
    claim_estimate(store, spec, stored)
    assert store.get(key) is None
    job = store.get("j")
    assert job is not None and job["predicted"]["total_seconds"] == 3.0
    shape = job["shape"]
    assert store.history("tiny-random-phi3", shape) == []  # no actual figures yet
    store.set_actual("j", "tiny-random-phi3", shape, {"total_seconds": 4.0, "peak_rss_gb": 1.1})
    (found,) = store.history("tiny-random-phi3", shape)
    assert found["actual"]["total_seconds"] == 4.0 and found["predicted"]["peak_rss_gb"] == 1.0


def test_step_timer_skips_the_warm_up_step() -> None:
    timer = StepTimer()
    for t, tokens, cpu in ((10.0, 100, 1.0), (12.0, 200, 2.0), (13.0, 300, 4.0)):
        timer.marks.append((t, tokens, cpu))
    assert timer.seconds_per_token() == pytest.approx(3.0 / 200)
    assert timer.seconds_per_token(cpu=True) == pytest.approx(3.0 / 200)
    timer.marks[-1] = (13.0, 300, 5.0)
    assert timer.seconds_per_token(cpu=True) == pytest.approx(4.0 / 200)
    assert timer.steps == 2


def test_count_rows_counts_conversations(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"messages": []}\n\n{"messages": []}\n')
    assert count_rows(str(f)) == 2


def test_stage_cpu_is_the_difference_of_running_totals() -> None:
    from chattune.jobs.runner import stage_cpu

    found = stage_cpu(
        {"validate": 1.0, "model_import": 1.5, "finetune": 9.0}, {"model_import": 0.0}
    )
    assert (found["validate"], found["model_import"], found["finetune"]) == (1.0, 0.0, 7.5)
    assert found["setup"] >= 0


def test_a_killed_calibration_says_so_in_one_line() -> None:
    from chattune.jobs.preflight import _calibration_error

    err = _calibration_error("", -9)
    assert "killed by signal 9" in str(err) and "\n" not in str(err)
    err = _calibration_error("Traceback...\nValueError: bad thing\n", 1)
    assert "ValueError: bad thing" in str(err)
