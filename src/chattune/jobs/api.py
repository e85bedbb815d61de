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
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chattune.errors import ConflictError, NotFoundError, ValidationError
from chattune.jobs import store
from chattune.jobs.spec import JobSpec, load_spec, parse_spec, spec_json
from chattune.jobs.store import Job
from chattune.workspace import Workspace, write_atomic


class JobsAPI:
    """``client.jobs``: pipeline jobs in the workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def create(
        self, spec: str | Path | dict[str, Any] | JobSpec, overrides: dict[str, Any] | None = None
    ) -> Job:
        """Validate ``spec`` (a YAML path, mapping or JobSpec) and start its job process."""
        if isinstance(spec, JobSpec):
            job_spec = spec
        elif isinstance(spec, dict):
            job_spec = parse_spec({**spec, **(overrides or {})})
        else:
            job_spec = load_spec(spec, overrides)
        check_inputs(job_spec)
        store.insert(self.ws, job_spec.name, job_spec.experiment or "", spec_json(job_spec))
        write_atomic(self.ws.job_dir(job_spec.name) / "spec.yaml", _yaml(job_spec))
        self._spawn(job_spec.name, resume=False)
        return self.get(job_spec.name)

    def get(self, name: str) -> Job:
        """The job, with a dead job process shown as failed (never running forever)."""
        job = store.get(self.ws, name)
        if not job.done and job.pid is not None and not _alive(job.pid):
            store.update_job(
                self.ws,
                name,
                status="failed",
                finished_at=time.time(),
                error=f"job process {job.pid} died; resume with `chattune jobs resume {name}`",
            )
            for stage in job.stages:
                if stage.status == "running":
                    store.update_stage(
                        self.ws,
                        name,
                        stage.name,
                        status="failed",
                        error="job process died",
                        finished_at=time.time(),
                    )
            job = store.get(self.ws, name)
        return job

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        return [self.get(n) for n in store.names(self.ws)]

    def cancel(self, name: str) -> Job:
        """Stop a queued or running job (SIGTERM to its process)."""
        job = self.get(name)
        if job.done:
            raise ConflictError(f"job {name!r} is {job.status} already", "nothing to cancel")
        if job.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)
        return self.wait(name, timeout=60)

    def resume(self, name: str) -> Job:
        """Run a failed or canceled job again; completed stages are reused, training resumes."""
        job = self.get(name)
        if not job.done or job.status == "completed":
            raise ConflictError(
                f"job {name!r} is {job.status}", "only failed or canceled jobs can be resumed"
            )
        store.update_job(self.ws, name, status="queued", error=None)
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
        log = open(self.ws.job_dir(name) / "process.log", "ab")  # noqa: SIM115 (child owns it)
        cmd = [sys.executable, "-m", "chattune.jobs.worker", name, "--workspace", str(self.ws.root)]
        proc = subprocess.Popen(
            cmd + (["--resume"] if resume else []),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the terminal and the CLI
        )
        log.close()
        store.update_job(self.ws, name, pid=proc.pid)


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


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _yaml(spec: JobSpec) -> str:
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
