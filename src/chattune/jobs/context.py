"""What a stage function receives: the job, its folder, resolved parameters, upstream outputs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chattune.jobs.spec import JobSpec, TrainParams
from chattune.workspace import Workspace


@dataclass
class StageContext:
    """Inputs of one stage run. ``outputs`` holds every earlier stage's outputs by name."""

    workspace: Workspace
    spec: JobSpec
    params: TrainParams
    job_dir: Path
    log: logging.Logger
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_metrics: Callable[[dict[str, float], int | None], None] = lambda _m, _s: None
    resuming: bool = False

    def stage_dir(self, stage: str) -> Path:
        path = self.job_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def progress(self, **fields: Any) -> None:
        """Publish live progress (step, total, loss...) for ``jobs stream`` to render."""
        import json

        from chattune.workspace import write_atomic

        write_atomic(self.job_dir / "progress.json", json.dumps(fields))
