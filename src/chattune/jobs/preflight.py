"""Pre-flight estimate: how long a job will take and whether it fits, before it runs.

>>> est = client.jobs.estimate("examples/job.yaml")
>>> est.total_seconds, est.peak_rss_gb, est.fits

The real stages run on a slice of the job's data in a process of their own
(:mod:`chattune.jobs.calibrate`, in a temporary folder: no job, no cache entry, no MLflow
run); what they measured is scaled to the whole data (rows, packed rows, steps, evaluations,
checkpoints, generated tokens). When jobs of the same model and shape have run in this
workspace, their actual/predicted ratios correct the prediction.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chattune.errors import ChattuneError, ValidationError
from chattune.jobs.spec import JobSpec, resolve_parameters
from chattune.store.resources import PREFLIGHT, ResourceStore
from chattune.train.params import TrainParams

CALIBRATION_TIMEOUT_S = 600
_SHAPE_KEYS = (
    "apply_lora",
    "lora_r",
    "lora_target_modules",
    "precision",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "max_seq_length",
    "packing",
    "optim",
    "apply_deepspeed",
    "deepspeed_stage",
    "fsdp",
    "merge_lora_weights",
    "generation_eval_rows",
    "generation_max_new_tokens",
)


@dataclass
class Estimate:
    """What a job will take: steps, time per stage and in all, peak memory, fit."""

    job: str
    model: str
    compute: str
    steps_per_epoch: int
    total_steps: int
    seconds_per_step: float
    tokens_per_second: float
    stages: dict[str, float]
    """Predicted seconds per pipeline stage (``setup``: the job process's own start)."""
    peak_rss_gb: float
    gpu_gb: float | None
    room_gb: float
    fits: bool
    suggestions: list[str] = field(default_factory=list)
    raw_stages: dict[str, float] = field(default_factory=dict)
    raw_peak_rss_gb: float = 0.0
    """The calibration's figures before the history correction."""
    history: int = 0
    """Earlier jobs of the same model and shape whose actual figures corrected this."""
    cpu_stages: dict[str, float] = field(default_factory=dict)
    """Predicted CPU seconds per stage (the job process's own): what the wall time would be
    per core with the machine to itself; unlike wall time, not inflated by other work."""
    calibration_seconds: float = 0.0
    calibration: dict[str, float] = field(default_factory=dict)
    """Seconds each measured part of the calibration run took."""
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.stages.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total_seconds": round(self.total_seconds, 1)}

    def predicted(self) -> dict[str, Any]:
        """What a job's record keeps (compared with the actual figures when it ends)."""
        return {
            "stages": {k: round(v, 2) for k, v in self.stages.items()},
            "total_seconds": round(self.total_seconds, 1),
            "peak_rss_gb": round(self.peak_rss_gb, 3),
            "gpu_gb": self.gpu_gb,
            "total_steps": self.total_steps,
            "history": self.history,
            "raw_stages": self.raw_stages,
            "raw_total_seconds": round(sum(self.raw_stages.values()), 1),
            "raw_peak_rss_gb": self.raw_peak_rss_gb,
            "cpu_stages": self.cpu_stages,
            "cpu_seconds": round(sum(self.cpu_stages.values()), 1),
        }


def shape_key(spec: JobSpec, params: TrainParams) -> str:
    """What makes two jobs comparable per step: model, compute and the per-step parameters
    (not the data size, epochs or steps, which the estimate scales by itself)."""
    chosen = {k: getattr(params, k) for k in _SHAPE_KEYS}
    blob = json.dumps({"compute": spec.compute, "world": params.world, **chosen}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def spec_digest(stored: dict[str, Any]) -> str:
    """The spec without its name: the same job spec estimated, then created."""
    rest = {k: v for k, v in stored.items() if k not in ("name", "experiment")}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def estimate(
    spec: JobSpec,
    resources: ResourceStore,
    reused: set[str],
    steps: int | None = None,
    mlflow_uri: str | None = None,
) -> Estimate:
    """Calibrate ``spec`` in a subprocess, scale to its data, correct by history."""
    params = resolve_parameters(spec).params
    started = time.time()
    measured = run_calibration(spec, steps, mlflow_uri)
    est = predict(spec, params, measured, reused)
    if "cpu_seconds" in measured:
        cpu = measured | {
            "seconds": measured["cpu_seconds"],
            "seconds_per_token": measured["cpu_seconds_per_token"],
        }
        est.cpu_stages = predict(spec, params, cpu, reused).stages
    est.calibration_seconds = round(time.time() - started, 1)
    est.raw_stages = dict(est.stages)
    est.raw_peak_rss_gb = est.peak_rss_gb
    past = resources.history(spec.model, shape_key(spec, params))
    if past:
        correct(est, past)
    _check_fit(est, spec, params)
    return est


def run_calibration(
    spec: JobSpec, steps: int | None, mlflow_uri: str | None = None
) -> dict[str, Any]:
    """The measurements of :mod:`chattune.jobs.calibrate`, run in a temporary folder."""
    work = Path(tempfile.mkdtemp(prefix="chattune-preflight-"))
    try:
        request: dict[str, Any] = {
            "spec": spec.model_dump(mode="json", exclude_unset=True) | {"name": spec.name}
        }
        if steps:
            request["steps"] = steps
        if mlflow_uri:
            request["mlflow_uri"] = mlflow_uri
        (work / "request.json").write_text(json.dumps(request))
        env = dict(os.environ)
        done = subprocess.run(
            [sys.executable, "-m", "chattune.jobs.calibrate", str(work / "request.json")],
            capture_output=True,
            text=True,
            timeout=CALIBRATION_TIMEOUT_S,
            env=env,
            cwd=work,
        )
        if done.returncode != 0 or not (work / "result.json").exists():
            raise _calibration_error(done.stderr, done.returncode)
        return json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _calibration_error(stderr: str, returncode: int = 1) -> ChattuneError:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {returncode}, no output"
    if returncode < 0:  # a signal: the kernel's OOM killer sends SIGKILL
        last = f"killed by signal {-returncode} (out of memory?); {last}"
    for line in reversed(lines):  # a chattune error's own line (message; hint)
        if "Error:" in line:
            last = line
            break
    return ValidationError(
        f"pre-flight estimate: the calibration run failed: {last[:400]}",
        "fix the spec (`chattune jobs create -f FILE --dry-run`) and estimate again",
    )


def predict(spec: JobSpec, p: TrainParams, m: dict[str, Any], reused: set[str]) -> Estimate:
    """Scale the slice's measurements to the job's data and steps."""
    sec, rows, sliced = m["seconds"], m["rows"], m["slice_rows"]
    steps_per_epoch, total = _steps(p, m)
    tokens_per_step = (
        m["slice_train_tokens"]
        / max(m["slice_train_rows"], 1)
        * p.per_device_train_batch_size
        * p.gradient_accumulation_steps
    )
    per_step = m["seconds_per_token"] * tokens_per_step
    stages = {
        "setup": sec.get("start", 0.0),
        "validate": sec["validate"] + sec["validate_data"] * (_ratio(rows, sliced) - 1),
        "model_import": sec["model_import"],
        "preprocess": _scaled_preprocess(sec, rows, sliced),
        "finetune": _finetune_seconds(p, m, per_step, total, steps_per_epoch),
        "evaluate": _evaluate_seconds(p, m),
        "package": sec["package"],
    }
    for name in reused:
        stages[name] = 0.0
    return Estimate(
        job=spec.name,
        model=spec.model,
        compute=spec.compute,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        seconds_per_step=round(per_step, 3),
        tokens_per_second=round(1 / m["seconds_per_token"], 1),
        stages={k: round(max(v, 0.0), 2) for k, v in stages.items()},
        peak_rss_gb=round(m["peak_rss_gb"], 3),
        gpu_gb=m.get("gpu_peak_gb"),
        room_gb=0.0,
        fits=True,
        rows=rows,
        calibration={k: round(v, 2) for k, v in sec.items()},
    )


def _ratio(rows: dict[str, int], sliced: dict[str, int], splits: tuple[str, ...] = ()) -> float:
    keys = [k for k in rows if not splits or k in splits]
    return sum(rows[k] for k in keys) / max(sum(sliced.get(k, 0) for k in keys), 1)


def _scaled_preprocess(
    sec: dict[str, float], rows: dict[str, int], sliced: dict[str, int]
) -> float:
    fixed = sec["preprocess_fixed"]
    ratio = _ratio(rows, sliced, ("train", "validation", "test"))
    return fixed + max(sec["preprocess"] - fixed, 0.0) * ratio


def _steps(p: TrainParams, m: dict[str, Any]) -> tuple[int, int]:
    """Optimizer steps per epoch and in all, as the Trainer counts them."""
    ratio = m["rows"]["train"] / max(m["slice_rows"]["train"], 1)
    train_rows = max(round(m["slice_train_rows"] * ratio), 1)
    nproc, nnodes = p.world
    batches = math.ceil(train_rows / (p.per_device_train_batch_size * nproc * nnodes))
    per_epoch = max(batches // p.gradient_accumulation_steps, 1)
    total = p.max_steps if p.max_steps > 0 else math.ceil(p.num_train_epochs * per_epoch)
    return per_epoch, total


def _finetune_seconds(
    p: TrainParams, m: dict[str, Any], per_step: float, total: int, per_epoch: int
) -> float:
    """Load, steps, evaluations during training, checkpoints, the final save."""
    sec = m["seconds"]
    eval_split = "validation" if "validation" in m["rows"] else "test"
    evals = 0
    if eval_split in m["rows"] and p.evaluation_strategy == "epoch":
        evals = math.ceil(total / per_epoch)
    elif eval_split in m["rows"] and p.evaluation_strategy == "steps" and p.eval_steps:
        evals = total // p.eval_steps
    eval_once = _per_example(m) * _examples(m, eval_split)
    checkpoint = sec["finetune_save"] * (1 if p.apply_lora else 3)  # + optimizer state
    saves = total // p.save_steps
    return (
        sec["finetune_load"]
        + total * per_step
        + evals * eval_once
        + saves * checkpoint
        + sec["finetune_save"]
    )


def _per_example(m: dict[str, Any]) -> float:
    return m["seconds"].get("eval_score", 0.0) / max(m.get("eval_examples", 0), 1)


def _examples(m: dict[str, Any], split: str) -> float:
    """Preprocessed examples of ``split`` in the whole data (the slice's share scaled)."""
    sliced = m["slice_examples"].get(split, 0)
    return sliced * m["rows"].get(split, 0) / max(m["slice_rows"].get(split, 1), 1)


def _evaluate_seconds(p: TrainParams, m: dict[str, Any]) -> float:
    """Base and fine-tuned model: load, score the test split, generate the sample."""
    sec = m["seconds"]
    if "test" not in m["rows"]:
        return 0.0
    gen_source = "test_gen" if "test_gen" in m["rows"] else "test"
    gen_rows = min(p.generation_eval_rows, m["rows"][gen_source])
    # Generation costs per new token and per prompt (measured: per token-row); on these
    # CPUs a batch of prompts costs about its rows, not one row (SmolLM2: 2.3x at 4 vs 2).
    per_token_row = sec.get("eval_generate", 0.0) / max(m.get("generated_tokens", 0), 1)
    one = (
        sec.get("eval_load", 0.0)
        + _per_example(m) * _examples(m, "test")
        + per_token_row * gen_rows * p.generation_max_new_tokens
    )
    return 2 * one


def correct(est: Estimate, past: list[dict[str, Any]]) -> None:
    """Scale each stage and the peak memory by the median actual/predicted ratio of the
    workspace's earlier jobs of the same model and shape (their uncorrected predictions)."""
    for stage, seconds in est.stages.items():
        ratios = [
            r["actual"]["stages"][stage] / raw
            for r in past
            if (raw := _raw(r["predicted"]).get(stage)) and stage in r["actual"].get("stages", {})
        ]
        if ratios and seconds:
            est.stages[stage] = round(seconds * statistics.median(ratios), 2)
    rss = [
        r["actual"]["peak_rss_gb"] / raw
        for r in past
        if (raw := r["predicted"].get("raw_peak_rss_gb") or r["predicted"].get("peak_rss_gb"))
        and r["actual"].get("peak_rss_gb")
    ]
    if rss:
        est.peak_rss_gb = round(est.peak_rss_gb * statistics.median(rss), 3)
    est.history = len(past)


def _raw(predicted: dict[str, Any]) -> dict[str, float]:
    return predicted.get("raw_stages") or predicted.get("stages") or {}


def _check_fit(est: Estimate, spec: JobSpec, p: TrainParams) -> None:
    """Against this machine's room (GPU memory where there is one), with ``compute check``'s
    suggestions when it does not fit."""
    from chattune.compute.estimate import Architecture
    from chattune.compute.fit import model_config, room, suggestions
    from chattune.train.validate import training_shape

    where = room()
    est.room_gb = where.gb
    need = est.peak_rss_gb if where.shared else (est.gpu_gb or 0.0)
    est.fits = need <= where.gb
    if not est.fits:
        arch = Architecture.from_config(model_config(spec.model))
        est.suggestions = suggestions(arch, training_shape(p), where)


def record_estimate(
    resources: ResourceStore, spec: JobSpec, stored: dict[str, Any], est: Estimate
) -> None:
    """Keep the estimate (as ``preflight:<digest>``) for the job created from the same spec."""
    params = resolve_parameters(spec).params
    key = PREFLIGHT + spec_digest(stored)
    resources.put(key, spec.model, shape_key(spec, params), est.predicted())


def claim_estimate(resources: ResourceStore, spec: JobSpec, stored: dict[str, Any]) -> None:
    """At ``jobs create``: the pre-flight estimate of the same spec becomes the job's."""
    key = PREFLIGHT + spec_digest(stored)
    found = resources.get(key)
    if found is None:
        return
    resources.put(spec.name, found["model"], found["shape"], found["predicted"])
    resources.delete(key)
