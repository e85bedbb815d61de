"""The job's MLflow run: effective parameters (with their source), step metrics, status."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from chattune.jobs.spec import JobSpec
from chattune.workspace import Workspace, file_lock


class Tracker:
    """Creates (or reopens, on resume) the job's run in its experiment."""

    def __init__(self, ws: Workspace, spec: JobSpec, run_id: str | None) -> None:
        import mlflow

        mlflow.set_tracking_uri(ws.mlflow_connect_uri)
        name = spec.experiment or "default"
        # Opening the store creates MLflow's tables; two jobs starting at once on a new
        # workspace would both migrate them ("duplicate column"), so one does it alone.
        # The same lock makes get-or-create of the experiment atomic.
        with file_lock(ws.root / ".mlflow.lock"):
            client = mlflow.MlflowClient()
            exp = client.get_experiment_by_name(name)
            exp_id = (
                exp.experiment_id
                if exp
                else client.create_experiment(name, artifact_location=ws.artifact_root)
            )
        if run_id is None:
            run_id = client.create_run(
                exp_id,
                run_name=spec.name,
                tags={"chattune.job": spec.name, "chattune.model": spec.model},
            ).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
        self.client, self.run_id = client, run_id
        self.ws, self.job = ws, spec.name

    def log_parameters(self, table: dict[str, dict[str, Any]]) -> None:
        """Each effective parameter as a param, its source as tag ``source.<name>``."""
        from mlflow.entities import Param, RunTag
        from mlflow.exceptions import MlflowException

        params = [Param(k, str(v["value"])[:500]) for k, v in table.items()]
        tags = [RunTag(f"source.{k}", v["source"]) for k, v in table.items()]
        with contextlib.suppress(MlflowException):  # a resumed run has them already
            self.client.log_batch(self.run_id, params=params, tags=tags)

    def log_data(self, files: dict[str, str], digests: dict[str, str]) -> None:
        """Each data file's plain sha256 (what ``sha256sum FILE`` prints) as param
        ``data.<split>.sha256``, and its path as ``data.<split>.path``."""
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        params = [Param(f"data.{k}.sha256", v) for k, v in digests.items()]
        params += [Param(f"data.{k}.path", str(files[k])[:500]) for k in digests if k in files]
        with contextlib.suppress(MlflowException):  # a resumed run has them already
            self.client.log_batch(self.run_id, params=params)

    def log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, step or 0) for k, v in metrics.items()]
        )

    def finish(self, status: str) -> None:
        """Log the job's artifacts (spec, logs, loss curve, report), then close the run.

        An artifact that cannot be stored does not change the job's outcome: the reason is
        kept as the run's tag ``chattune.artifacts_error``.
        """
        from chattune.jobs.artifacts import log_job_artifacts

        try:
            log_job_artifacts(self.client, self.run_id, self.ws, self.job)
        except Exception as exc:
            self.client.set_tag(
                self.run_id, "chattune.artifacts_error", f"{type(exc).__name__}: {exc}"[:500]
            )
        mlflow_status = MLFLOW_STATUS.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=mlflow_status)


MLFLOW_STATUS = {"completed": "FINISHED", "canceled": "KILLED"}
"""A job's final status as MLflow's run status (anything else is ``FAILED``)."""


def terminate_run(ws: Workspace, run_id: str, status: str) -> str | None:
    """Close the MLflow run of a job whose process ended without closing it (killed, or
    stopped before it started); None when done, else why it could not be (the job's own
    state is right either way, so this never raises)."""
    import mlflow

    try:
        client = mlflow.MlflowClient(tracking_uri=ws.mlflow_uri)
        if client.get_run(run_id).info.status in ("RUNNING", "SCHEDULED"):
            client.set_terminated(run_id, status=MLFLOW_STATUS.get(status, "FAILED"))
    except Exception as exc:  # MLflow's store unreadable: the next command tries again
        return f"{type(exc).__name__}: {exc}"
    return None
