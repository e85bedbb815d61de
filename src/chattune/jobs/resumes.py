"""What a resume changes in a job's record: the resume itself, and a metric history that
keeps one point per step.

A killed run has logged the steps between its last checkpoint and the kill; the resumed run
trains those steps again from the checkpoint. MLflow cannot delete points, so the resumed run
logs only the (metric, step) points the run does not hold yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chattune.store.jobs import Job
from chattune.train.checkpoints import newest_complete

MetricSink = Callable[[dict[str, float], int | None], None]


def resume_entry(job: Job, job_dir: Path) -> dict[str, Any]:
    """``{"at", "checkpoint", "step"}`` for ``jobs show``: where training will continue."""
    entry: dict[str, Any] = {"at": time.time(), "checkpoint": None, "step": None}
    finetune = next((s for s in job.stages if s.name == "finetune"), None)
    if finetune is not None and finetune.status == "completed":
        return entry | {"note": "training had finished; later stages run again"}
    start = newest_complete(job_dir / "finetune" / "checkpoints")
    if start is None:
        return entry | {"note": "no complete checkpoint: training starts from step 0"}
    return entry | {"checkpoint": start.name, "step": start.step}


def once_per_step(client: Any, run_id: str, sink: MetricSink) -> MetricSink:
    """``sink`` minus the (metric, step) points the MLflow run already holds."""
    run = client.get_run(run_id)
    held = {
        (key, point.step)
        for key in run.data.metrics
        for point in client.get_metric_history(run_id, key)
    }

    def log(metrics: dict[str, float], step: int | None) -> None:
        new = {k: v for k, v in metrics.items() if (k, step or 0) not in held}
        held.update((k, step or 0) for k in new)
        if new:
            sink(new, step)

    return log
