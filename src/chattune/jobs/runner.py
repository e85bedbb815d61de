"""Run a job's stages in order, in the job's own process: status, logs, cache, MLflow run.

validate → model_import → preprocess → finetune → evaluate → package. Each stage gets a cache
key from its inputs; a completed stage with the same key is reused (cheap, deterministic
stages across jobs; expensive ones within the same job, so a resumed job skips what is done).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from chattune.errors import ChattuneError
from chattune.jobs import store
from chattune.jobs.context import StageContext
from chattune.jobs.spec import JobSpec, TrainParams, effective_parameters
from chattune.workspace import Workspace

CROSS_JOB_REUSE = ("validate", "model_import", "preprocess")
# The outputs each stage reads; with continue_on_step_failure, a stage whose inputs failed
# is skipped rather than run into a KeyError.
NEEDS = {
    "preprocess": ("model_import",),
    "finetune": ("model_import", "preprocess"),
    "evaluate": ("preprocess", "finetune"),
    "package": ("finetune",),
}


class Canceled(Exception):
    """Raised in the job process when it is asked to stop (SIGTERM)."""


def run_job(ws: Workspace, name: str, resuming: bool = False) -> str:
    """Run (or resume) job ``name`` to a final status and return it."""
    import os

    job = store.get(ws, name)
    spec = JobSpec.model_validate(job.spec)
    job_dir = ws.job_dir(name)
    log = job_logger(name, job_dir / "job.log")
    store.update_job(
        ws,
        name,
        status="running",
        pid=os.getpid(),
        started_at=time.time(),
        finished_at=None,
        error=None,
    )
    log.info("job %s %s (pid %d)", name, "resumed" if resuming else "started", os.getpid())
    tracker = Tracker(ws, spec, job.mlflow_run_id)
    store.update_job(ws, name, mlflow_run_id=tracker.run_id)
    params = resolve_parameters(spec)
    tracker.log_params(params)
    ctx = StageContext(
        ws, spec, params, job_dir, log, log_metrics=tracker.log_metrics, resuming=resuming
    )
    status, failed, key = "completed", False, ""
    for stage in store.STAGES:
        key = cache_key(stage, key, stage_inputs(stage, spec, params))
        missing = [d for d in NEEDS.get(stage, ()) if d not in ctx.outputs]
        if failed or missing:
            why = "earlier failure" if failed else f"needs {', '.join(missing)}, which failed"
            store.update_stage(ws, name, stage, status="canceled", note=f"skipped: {why}")
            continue
        try:
            ctx.outputs[stage] = run_stage(ctx, name, stage, key)
        except Canceled:
            status, failed = "canceled", True
            store.update_stage(ws, name, stage, status="canceled", finished_at=time.time())
            log.info("job canceled during %s", stage)
        except Exception as exc:
            message = str(exc) if isinstance(exc, ChattuneError) else f"{type(exc).__name__}: {exc}"
            log.error("stage %s failed: %s\n%s", stage, message, traceback.format_exc())
            store.update_stage(
                ws, name, stage, status="failed", error=message, finished_at=time.time()
            )
            store.update_job(ws, name, error=f"{stage}: {message}")
            status = "failed"
            failed = not spec.settings.continue_on_step_failure
    tracker.finish(status)
    store.update_job(ws, name, status=status, finished_at=time.time())
    log.info("job %s %s", name, status)
    return status


def run_stage(ctx: StageContext, job: str, stage: str, key: str) -> dict[str, Any]:
    """Run one stage (or reuse a matching earlier run) and record its state."""
    ws, spec = ctx.workspace, ctx.spec
    if not spec.settings.force_rerun:
        reused = store.find_reusable(ws, stage, key)
        if reused and (reused[0] == job or stage in CROSS_JOB_REUSE) and outputs_exist(reused[1]):
            note = "reused" if reused[0] == job else f"reused from job {reused[0]}"
            store.update_stage(
                ws, job, stage, status="completed", note=note, cache_key=key, outputs=reused[1]
            )
            ctx.log.info("stage %s: %s (cache hit)", stage, note)
            return reused[1]
    now = time.time()
    store.update_stage(
        ws,
        job,
        stage,
        status="running",
        started_at=now,
        finished_at=None,
        error=None,
        note=None,
        cache_key=key,
    )
    ctx.log.info("stage %s: running", stage)
    ctx.progress(stage=stage)
    module = importlib.import_module(f"chattune.train.{stage}")
    outputs = module.run(ctx)
    store.update_stage(ws, job, stage, status="completed", outputs=outputs, finished_at=time.time())
    ctx.log.info("stage %s: completed in %.1fs", stage, time.time() - now)
    return outputs


def resolve_parameters(spec: JobSpec) -> TrainParams:
    """The spec's parameters over the catalog model's ``model_specific_defaults``."""
    from chattune.catalog import sources

    card = sources.parse(spec.model).card
    defaults = card.tags.get("model_specific_defaults", {}) if card else {}
    return effective_parameters(spec.parameters, dict(defaults))  # type: ignore[arg-type]


def stage_inputs(stage: str, spec: JobSpec, params: TrainParams) -> dict[str, Any]:
    """What each stage's result depends on, beyond the stages before it."""
    from chattune.train.validate import file_digest

    if stage == "validate":
        data = {k: v for k, v in spec.data.model_dump().items() if v}
        return {
            "model": spec.model,
            "data": {k: [v, file_digest(Path(v))] for k, v in data.items() if Path(v).exists()},
        }
    if stage == "model_import":
        return {"model": spec.model}
    if stage == "preprocess":
        return {"max_seq_length": params.max_seq_length}
    if stage == "finetune":
        return params.model_dump(exclude={"per_device_eval_batch_size"})
    if stage == "evaluate":
        return {"per_device_eval_batch_size": params.per_device_eval_batch_size}
    return {}


def cache_key(stage: str, upstream: str, inputs: dict[str, Any]) -> str:
    blob = json.dumps({"stage": stage, "upstream": upstream, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def outputs_exist(outputs: dict[str, Any]) -> bool:
    """Every path-looking output still exists (a reused stage must still have its files)."""
    paths = [v for v in _flat(outputs) if isinstance(v, str) and v.startswith("/")]
    return all(Path(p).exists() for p in paths)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    return [value]


def job_logger(name: str, path: Path) -> logging.Logger:
    """Logger writing timestamped lines to the job's ``job.log`` (what ``jobs stream`` tails)."""
    log = logging.getLogger(f"chattune.job.{name}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    return log


class Tracker:
    """The job's MLflow run: parameters, step metrics, final status."""

    def __init__(self, ws: Workspace, spec: JobSpec, run_id: str | None) -> None:
        import mlflow

        mlflow.set_tracking_uri(ws.mlflow_uri)
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(spec.experiment or "default")
        exp_id = (
            exp.experiment_id
            if exp
            else client.create_experiment(
                spec.experiment or "default", artifact_location=ws.artifact_root
            )
        )
        if run_id is None:
            run_id = client.create_run(
                exp_id, run_name=spec.name, tags={"chattune.job": spec.name}
            ).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
        self.client, self.run_id = client, run_id

    def log_params(self, params: TrainParams) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        try:
            values = params.model_dump()
            self.client.log_batch(
                self.run_id, params=[Param(k, str(v)[:500]) for k, v in values.items()]
            )
        except MlflowException:  # params are immutable: a resumed run already has them
            pass

    def log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, step or 0) for k, v in metrics.items()]
        )

    def finish(self, status: str) -> None:
        mlflow_status = {"completed": "FINISHED", "canceled": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=mlflow_status)
