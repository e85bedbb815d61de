"""Jobs SDK: create a pipeline job in its own process, follow it, read its metrics.

>>> job = client.jobs.create("examples/job.yaml")     # returns at once
>>> final = client.jobs.stream(job.name)              # follows the log to the end
>>> final.status
'completed'
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chattune.catalog.registered import use_workspace
from chattune.compute.targets import LOCAL, check_visible, start_local, submit_ray, unknown
from chattune.errors import ConflictError, NotFoundError, ValidationError
from chattune.jobs.pipeline import STAGE_NAMES
from chattune.jobs.preflight import claim_estimate
from chattune.jobs.queue import alive, position
from chattune.jobs.spec import JobSpec, effective_yaml, load_spec, parse_spec, resolve_parameters
from chattune.store import workspace_store
from chattune.store.compute import TargetRecord
from chattune.store.jobs import Job
from chattune.store.resources import ResourceStore
from chattune.workspace import Workspace, write_atomic

if TYPE_CHECKING:
    from chattune.jobs.plan import Plan
    from chattune.jobs.preflight import Estimate


class JobsAPI:
    """``client.jobs``: pipeline jobs in the workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.store = workspace_store(workspace).jobs
        self.resources_store = ResourceStore(workspace_store(workspace).db)
        use_workspace(workspace)  # specs may name its registered models (model: my-sft:1)

    def create(
        self, spec: str | Path | dict[str, Any] | JobSpec, overrides: dict[str, Any] | None = None
    ) -> Job:
        """Validate ``spec`` (a YAML path, mapping or JobSpec) and start its job process.

        The job's ``spec.yaml`` shows the parameters it really trains with and their source.
        """
        job_spec = absolute_paths(_as_spec(spec, overrides))
        check_inputs(job_spec)
        target = self.target(job_spec.compute)  # an unknown target fails here, never runs locally
        if target.type == "ray":
            check_visible(target, self._paths(job_spec))
        effective = resolve_parameters(job_spec)
        self.store.insert(
            job_spec.name,
            job_spec.experiment or "",
            stored_spec(job_spec),
            STAGE_NAMES,
            effective.table(),
            compute=job_spec.compute,
        )
        write_atomic(
            self.ws.job_dir(job_spec.name) / "spec.yaml", effective_yaml(job_spec, effective)
        )
        claim_estimate(self.resources_store, job_spec, stored_spec(job_spec))
        self._spawn(job_spec.name, resume=False)
        return self.get(job_spec.name)

    def plan(
        self,
        spec: str | Path | dict[str, Any] | JobSpec,
        overrides: dict[str, Any] | None = None,
        data_must_exist: bool = True,
    ) -> Plan:
        """What ``create`` would run, without starting anything (``jobs create --dry-run``).

        ``data_must_exist=False`` plans over data files still to be made (``demo --dry-run``).
        """
        from chattune.jobs.plan import make_plan

        job_spec = absolute_paths(_as_spec(spec, overrides))
        if data_must_exist:
            check_inputs(job_spec)
        else:
            from chattune.catalog import sources

            sources.parse(job_spec.model)
        self.target(job_spec.compute)
        return make_plan(self.store, job_spec)

    def estimate(
        self,
        spec: str | Path | dict[str, Any] | JobSpec,
        overrides: dict[str, Any] | None = None,
        steps: int | None = None,
    ) -> Estimate:
        """Pre-flight: run the real stages on a slice of the data, in a process of their
        own, and predict steps, time per stage, peak memory and fit (``jobs create
        --estimate``). No job and no cache entry is left; the estimate is kept for the job
        created from the same spec, which records it beside what it really took.

        >>> est = client.jobs.estimate("examples/job.yaml")
        >>> est.total_seconds, est.peak_rss_gb, est.fits
        """
        from chattune.jobs.preflight import estimate, record_estimate

        job_spec = _as_spec(spec, overrides)
        check_inputs(job_spec)
        self.target(job_spec.compute)
        plan = self.plan(job_spec)
        reused = {s.name for s in plan.stages if s.action.startswith("reuse")}
        found = estimate(job_spec, self.resources_store, reused, steps, self.ws.mlflow_uri)
        record_estimate(self.resources_store, job_spec, stored_spec(job_spec), found)
        return found

    def resources(self, name: str) -> dict[str, Any]:
        """``{"predicted": {...}, "actual": {...}}`` of job ``name`` (empty when unknown)."""
        self.store.get(name)
        found = self.resources_store.get(name)
        return {"predicted": {}, "actual": {}} if found is None else found

    def parameters(self) -> dict[str, dict[str, Any]]:
        """Every job parameter: ``{name: {"default", "type", "choices", "description"}}``
        (what a job form offers; a spec's value is checked by ``create``/``plan``).

        >>> client.jobs.parameters()["learning_rate"]["default"]
        2e-05
        """
        import typing

        from chattune.train.params import TrainParams

        found = {}
        for name, field in TrainParams.model_fields.items():
            kind = field.annotation
            args = typing.get_args(kind)
            choices = list(args) if typing.get_origin(kind) is typing.Literal else None
            base = args[0] if typing.get_origin(kind) is typing.Annotated else kind
            found[name] = {
                "default": field.get_default(call_default_factory=True),
                "type": "choice" if choices else getattr(base, "__name__", str(base)),
                "choices": choices,
                "description": field.description or "",
            }
        return found

    def target(self, name: str) -> TargetRecord:
        """The compute target a job names (``local`` or one defined in the workspace)."""
        if name == LOCAL.name:
            return LOCAL
        found = workspace_store(self.ws).compute.get(name)
        if found is None:
            defined = workspace_store(self.ws).compute.list()
            raise unknown(name, [LOCAL.name, *(t.name for t in defined)])
        return found

    def get(self, name: str) -> Job:
        """The job, with a dead job process shown as failed (never running forever)."""
        job = self.store.get(name)
        if not job.done and job.submission is not None:
            return self._check_ray(job)
        if not job.done and job.pid is not None and not alive(job.pid):
            why = f"job process {job.pid} died; resume with `chattune jobs resume {name}`"
            job = self._mark_stopped(name, "failed", why)
        if job.status == "queued" and job.compute == LOCAL.name:
            job.queue_position = position(self.store, name)
        return job

    def _mark_stopped(self, name: str, status: str, error: str | None) -> Job:
        """Record the end of a job whose process could not (it died, or was stopped early),
        and close its MLflow run (``KILLED``/``FAILED``), which would stay ``RUNNING``."""
        now = time.time()
        self.store.update(name, status=status, finished_at=now, error=error)
        run_id = self.store.get(name).mlflow_run_id
        if run_id is not None:
            from chattune.jobs.tracking import terminate_run

            terminate_run(self.ws, run_id, status)
        for stage in self.store.get(name).stages:
            if stage.status == "running":
                stage_error = "job process died" if status == "failed" else None
                self.store.update_stage(
                    name, stage.name, status=status, error=stage_error, finished_at=now
                )
            elif stage.status == "queued":
                self.store.update_stage(name, stage.name, status="canceled", note=f"job {status}")
        return self.store.get(name)

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        return [self.get(n) for n in self.store.names()]

    def cancel(self, name: str) -> Job:
        """Stop a queued or running job (SIGTERM to its process)."""
        job = self.get(name)
        if job.done:
            raise ConflictError(f"job {name!r} is {job.status} already", "nothing to cancel")
        if job.submission is not None:
            from chattune.compute import ray_jobs

            ray_jobs.stop(self._address(job), job.submission)  # SIGTERM to the worker there
        elif job.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)
            _wait_gone(job.pid, timeout=60)
            if not self.store.get(name).done:  # it died before it could record the cancel
                self._mark_stopped(name, "canceled", None)
        return self.wait(name, timeout=60)

    def resume(self, name: str) -> Job:
        """Run a failed or canceled job again; completed stages are reused, training resumes."""
        job = self.get(name)
        if not job.done or job.status == "completed":
            raise ConflictError(
                f"job {name!r} is {job.status}", "only failed or canceled jobs can be resumed"
            )
        target = self.target(job.compute)
        if target.type == "ray":
            check_visible(target, self._paths(parse_spec(job.spec)))
        self.store.update(name, status="queued", error=None, queued_at=time.time())
        self._spawn(name, resume=True)
        return self.get(name)

    def wait(self, name: str, timeout: float | None = None) -> Job:
        """Block until the job reaches a final status."""
        deadline = None if timeout is None else time.time() + timeout
        while not (job := self.get(name)).done:
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"job {name} still {job.status} after {timeout}s")
            time.sleep(0.5)
        return job

    def stream(self, name: str, on_line: Callable[[str], None] = print, poll: float = 0.5) -> Job:
        """Follow the job's log from the start to its final status; return the final job."""
        for line in self.follow(name, poll):
            on_line(line)
        return self.get(name)

    def follow(self, name: str, poll: float = 0.5) -> Iterator[str]:
        """Yield the job's log lines as they are written, until the job is done."""
        path = self.ws.job_dir(name) / "job.log"
        self.get(name)
        offset = 0
        while True:
            done = self.get(name).done  # read before the file, so no final line is missed
            if path.exists():
                with open(path) as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
                yield from chunk.splitlines()
            if done:
                return
            time.sleep(poll)

    def progress(self, name: str) -> dict[str, Any]:
        """Live progress the job publishes (stage, step, total, loss)."""
        import json

        try:
            return json.loads((self.ws.job_dir(name) / "progress.json").read_text())
        except (OSError, ValueError):
            return {}

    def metrics(self, name: str, plot: str | Path | None = None) -> dict[str, Any]:
        """Final metrics and per-step history from the job's MLflow run; optional loss plot."""
        from chattune.jobs.metrics import read_metrics

        job = self.get(name)
        if job.mlflow_run_id is None:
            raise NotFoundError(f"job {name!r} has no metrics yet", "wait until it is running")
        return read_metrics(self.ws, job.mlflow_run_id, plot)

    def logs(self, name: str) -> str:
        self.get(name)
        path = self.ws.job_dir(name) / "job.log"
        return path.read_text() if path.exists() else ""

    def _spawn(self, name: str, resume: bool) -> None:
        job = self.store.get(name)
        target = self.target(job.compute)
        if target.type == "ray":
            attempt = sum(1 for _ in self.ws.job_dir(name).glob("ray-*.submitted")) + 1
            submission = submit_ray(target, name, self.ws.root, resume, attempt)
            (self.ws.job_dir(name) / f"ray-{attempt}.submitted").write_text(submission)
            self.store.update(name, submission=submission, pid=None)
            return
        log = self.ws.job_dir(name) / "process.log"
        self.store.update(name, pid=start_local(name, self.ws.root, resume, log), submission=None)

    def _paths(self, spec: JobSpec) -> dict[str, str]:
        """What a worker elsewhere must see: the workspace, data files, a model folder."""
        paths = {"workspace": str(self.ws.root)}
        paths |= {f"data.{k}": v for k, v in spec.data.model_dump().items() if v is not None}
        if Path(spec.model).is_absolute():
            paths["model"] = spec.model
        return paths

    def _address(self, job: Job) -> str:
        address = self.target(job.compute).address
        assert address is not None
        return address

    def _check_ray(self, job: Job) -> Job:
        """A Ray job that ended without its worker saying so (it never started, or was
        killed) is shown failed, with Ray's reason."""
        from chattune.compute import ray_jobs

        found = ray_jobs.info(self._address(job), job.submission or "")
        if found["status"] not in ray_jobs.TERMINAL:
            return job
        job = self.store.get(job.name)  # the worker may have finished meanwhile
        if not job.done:
            why = found["message"] or f"Ray job {job.submission} {found['ray_status']}"
            self.store.update(job.name, status="failed", finished_at=time.time(), error=why)
            job = self.store.get(job.name)
        return job


def absolute_paths(spec: JobSpec) -> JobSpec:
    """Data files and a local model folder resolved here, against this folder: the worker
    may run elsewhere (a Ray head starts it in its own working folder)."""
    spec = spec.model_copy(deep=True)  # the caller's JobSpec stays as given
    for split, path in spec.data.model_dump().items():
        if path is not None:
            setattr(spec.data, split, str(Path(path).expanduser().resolve()))
    model = Path(spec.model).expanduser()
    if model.is_dir():
        spec.model = str(model.resolve())
    return spec


def check_inputs(spec: JobSpec) -> None:
    """Cheap checks before a process starts: the model reference parses, data files exist."""
    from chattune.catalog import sources

    sources.parse(spec.model)
    for split, path in spec.data.model_dump().items():
        if path is not None and not Path(path).exists():
            raise ValidationError(
                f"data.{split}: file {path} not found",
                "create it with `chattune data download ... --out DIR` or fix the path",
            )


def _wait_gone(pid: int, timeout: float) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(pid).wait(timeout)


def _as_spec(
    spec: str | Path | dict[str, Any] | JobSpec, overrides: dict[str, Any] | None
) -> JobSpec:
    if isinstance(spec, JobSpec):
        if not overrides:
            return spec
        # Only what was set (the model's defaults still apply), the name kept, then overrides.
        given = spec.model_dump(mode="json", exclude_unset=True) | {"name": spec.name}
        derived = JobSpec.model_validate({**given, "experiment": None}).experiment
        if given.get("experiment") == derived:
            del given["experiment"]  # derived from the model: a new model derives its own
        return parse_spec({**given, **overrides})
    if isinstance(spec, dict):
        return parse_spec({**spec, **(overrides or {})})
    return load_spec(spec, overrides)


def stored_spec(spec: JobSpec) -> dict[str, Any]:
    """The spec as stored: only what the user set (model defaults still apply), plus names."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    return data | {"name": spec.name, "experiment": spec.experiment}
