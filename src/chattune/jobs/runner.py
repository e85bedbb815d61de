"""Run a job's pipeline in the job's own process: status, logs, cache reuse, MLflow run.

The runner walks :data:`~chattune.jobs.pipeline.PIPELINE`; each stage is run, or reused
when a completed run with the same cache key exists (in this job, or in any job for the
shared stages), or skipped when a stage it needs failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from chattune.errors import ChattuneError
from chattune.jobs.cancel import Canceled
from chattune.jobs.peak import PeakRss
from chattune.jobs.pipeline import PIPELINE, Inputs, Stage, cache_keys
from chattune.jobs.resumes import MetricSink, once_per_step, resume_entry
from chattune.jobs.spec import JobSpec, resolve_parameters
from chattune.jobs.tracking import Tracker
from chattune.store import workspace_store
from chattune.store.jobs import JobStore
from chattune.train import faults
from chattune.train.results import Hooks, Result
from chattune.workspace import Workspace, write_atomic


def run_job(ws: Workspace, name: str, resuming: bool = False) -> str:
    """Run (or resume) job ``name`` to a final status and return it."""
    from chattune.catalog.registered import use_workspace

    use_workspace(ws)  # the spec may start from one of its registered models
    jobs = workspace_store(ws).jobs
    job = jobs.get(name)
    spec = JobSpec.model_validate(job.spec)
    log = job_logger(name, ws.job_dir(name) / "job.log")
    jobs.update(
        name,
        status="running",
        pid=os.getpid(),
        started_at=time.time(),
        finished_at=None,
        error=None,
    )
    log.info("job %s %s (pid %d)", name, "resumed" if resuming else "started", os.getpid())
    if resuming:
        entry = resume_entry(job, ws.job_dir(name))
        jobs.update(name, resumes=[*job.resumes, entry])
        log.info("resume from %s", entry["checkpoint"] or entry.get("note"))
    tracker = Tracker(ws, spec, job.mlflow_run_id)
    jobs.update(name, mlflow_run_id=tracker.run_id)
    metrics: MetricSink = tracker.log_metrics
    if resuming and job.mlflow_run_id is not None:
        metrics = once_per_step(tracker.client, tracker.run_id, metrics)
    effective = resolve_parameters(spec)
    tracker.log_parameters(effective.table())
    digests = data_digests(spec)
    tracker.log_data(spec.data.model_dump(), digests)
    inputs = Inputs(
        spec,
        effective.params,
        ws.job_dir(name),
        hooks=Hooks(log, metrics, progress_writer(ws.job_dir(name))),
        resuming=resuming,
        data_sha256=digests,
    )
    status = run_pipeline(jobs, name, inputs)
    tracker.finish(status)
    jobs.update(name, status=status, finished_at=time.time())
    record_actual(ws, name, inputs)
    log.info("job %s %s", name, status)
    return status


def cpu_seconds() -> float:
    """CPU seconds this process (every thread) and its finished children used so far."""
    import resource

    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, GiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def record_actual(ws: Workspace, name: str, inputs: Inputs) -> None:
    """What the job really took, beside its prediction (``jobs show``; the estimator's
    history). Stages reused from the cache count 0 s; ``setup`` is the rest of the job's
    wall time (MLflow run, data digests). A failure here never fails the job."""
    from chattune.jobs.preflight import shape_key
    from chattune.store.resources import ResourceStore

    try:
        store = workspace_store(ws)
        job = store.jobs.get(name)
        stages = {
            s.name: 0.0 if (s.note or "").startswith("reused") else round(s.duration or 0.0, 2)
            for s in job.stages
        }
        total = (job.finished_at or time.time()) - (job.started_at or time.time())
        actual = {
            "status": job.status,
            "stages": {"setup": round(max(total - sum(stages.values()), 0.0), 2), **stages},
            "total_seconds": round(total, 1),
            "peak_rss_gb": round(peak_rss_gb(), 3),
            "stage_peak_rss_gb": {k: round(v, 3) for k, v in inputs.peak_rss_gb.items()},
            "cpu_stages": stage_cpu(inputs.cpu_seconds, stages),
            "cpu_seconds": round(cpu_seconds(), 1),
        }
        shape = shape_key(inputs.spec, inputs.params)
        ResourceStore(store.db).set_actual(name, inputs.spec.model, shape, actual)
    except Exception as exc:
        inputs.hooks.log.warning("could not record the job's resources: %s", exc)


def run_pipeline(jobs: JobStore, name: str, inputs: Inputs) -> str:
    """Walk the table; the job's final status."""
    keys = cache_keys(inputs)
    status, stop, failed = "completed", False, set[str]()
    for stage in PIPELINE:
        blocked = [n for n in stage.needs if n in failed]
        if stop or blocked:
            why = "earlier failure" if stop else f"needs {', '.join(blocked)}, which failed"
            jobs.update_stage(name, stage.name, status="canceled", note=f"skipped: {why}")
            failed.add(stage.name)
            continue
        try:
            inputs.results[stage.result] = run_stage(jobs, name, stage, keys[stage.name], inputs)
            inputs.peak_rss_gb[stage.name] = peak_rss_gb()
            inputs.cpu_seconds[stage.name] = cpu_seconds()
        except Canceled:
            status, stop = "canceled", True
            jobs.update_stage(name, stage.name, status="canceled", finished_at=time.time())
            inputs.hooks.log.info("job canceled during %s", stage.name)
        except Exception as exc:
            message = str(exc) if isinstance(exc, ChattuneError) else f"{type(exc).__name__}: {exc}"
            _log_failure(inputs, stage.name, message, exc)
            jobs.update_stage(
                name, stage.name, status="failed", error=message, finished_at=time.time()
            )
            jobs.update(name, error=f"{stage.name}: {message}")
            status = "failed"
            failed.add(stage.name)
            stop = not inputs.spec.settings.continue_on_step_failure
    return status


TRACEBACKS = "tracebacks.log"
"""Where a job's failed stages leave their tracebacks (the job log keeps one line each)."""


def _log_failure(inputs: Inputs, stage: str, message: str, exc: Exception) -> None:
    """One line in the job log; the traceback in :data:`TRACEBACKS` beside it (and in the
    log too with ``CHATTUNE_DEBUG=1``). A user error (a ``ChattuneError``) needs no
    traceback to be understood; a bug's line says where its traceback is."""
    trace = "".join(traceback.format_exception(exc))
    path: Path | None = inputs.job_dir / TRACEBACKS
    try:
        with (inputs.job_dir / TRACEBACKS).open("a") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} stage {stage}\n{trace}")
    except OSError:
        path = None  # an unwritable job folder: the log line must still be written
    if os.environ.get("CHATTUNE_DEBUG") == "1":
        inputs.hooks.log.error("stage %s failed: %s\n%s", stage, message, trace)
    elif isinstance(exc, ChattuneError) or path is None:
        inputs.hooks.log.error("stage %s failed: %s", stage, message)
    else:
        inputs.hooks.log.error("stage %s failed: %s (traceback in %s)", stage, message, path)


def run_stage(jobs: JobStore, job: str, stage: Stage, key: str, inputs: Inputs) -> Result:
    """Run one stage (or reuse a matching earlier run) and record its state."""
    log = inputs.hooks.log
    if not inputs.spec.settings.force_rerun:
        reused = jobs.find_reusable(stage.name, key)
        if reused and (reused[0] == job or stage.shared) and outputs_exist(reused[1]):
            note = "reused" if reused[0] == job else f"reused from job {reused[0]}"
            jobs.update_stage(
                job, stage.name, status="completed", note=note, cache_key=key, outputs=reused[1]
            )
            log.info("stage %s: %s (cache hit)", stage.name, note)
            return stage.result.model_validate(reused[1])
    started = time.time()
    jobs.update_stage(
        job,
        stage.name,
        status="running",
        started_at=started,
        finished_at=None,
        error=None,
        note=None,
        cache_key=key,
    )
    log.info("stage %s: running", stage.name)
    inputs.hooks.progress(stage=stage.name)
    faults.hit(f"stage:{stage.name}")
    with PeakRss() as peak:
        result = stage.run(inputs)
    jobs.update_stage(
        job,
        stage.name,
        status="completed",
        outputs=result.model_dump(mode="json"),
        finished_at=time.time(),
    )
    log.info(
        "stage %s: completed in %.1fs, peak RSS %.0f MB (with the processes it started)",
        stage.name,
        time.time() - started,
        peak.mb,
    )
    return result


def data_digests(spec: JobSpec) -> dict[str, str]:
    """sha256 of each data file that exists (validate reports the missing ones)."""
    from chattune.train.validate import file_digest

    files = {k: Path(v) for k, v in spec.data.model_dump().items() if v is not None}
    return {k: file_digest(p) for k, p in files.items() if p.exists()}


def outputs_exist(outputs: dict[str, object]) -> bool:
    """Every path-looking output still exists (a reused stage must still have its files)."""
    paths = [v for v in _flat(outputs) if isinstance(v, str) and v.startswith("/")]
    return all(Path(p).exists() for p in paths)


def _flat(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    return [value]


def progress_writer(job_dir: Path) -> Callable[..., None]:
    """Live progress (stage, step, total, loss) for ``jobs stream`` to render."""

    def write(**fields: object) -> None:
        write_atomic(job_dir / "progress.json", json.dumps(fields))

    return write


def stage_cpu(marks: dict[str, float], stages: dict[str, float]) -> dict[str, float]:
    """CPU seconds per stage from the running totals at each stage's end (``setup``: what
    came before the first stage and after the last)."""
    out, before = {}, 0.0
    for name, total in marks.items():
        out[name] = round(0.0 if stages.get(name) == 0.0 else total - before, 2)
        before = total
    return {"setup": round(max(cpu_seconds() - sum(out.values()), 0.0), 2), **out}


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
