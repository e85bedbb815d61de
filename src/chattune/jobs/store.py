"""Job and stage rows in the workspace database; the one place that writes them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from chattune.errors import NotFoundError
from chattune.workspace import Workspace, dumps

STAGES = ("validate", "model_import", "preprocess", "finetune", "evaluate", "package")
TERMINAL = ("completed", "failed", "canceled")


@dataclass
class Stage:
    """One pipeline step's state."""

    name: str
    status: str
    note: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class Job:
    """A pipeline job: its spec, state and stages."""

    name: str
    experiment: str
    spec: dict[str, Any]
    status: str
    pid: int | None
    mlflow_run_id: str | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    stages: list[Stage]

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def insert(ws: Workspace, name: str, experiment: str, spec_json: str) -> None:
    from chattune.errors import ConflictError

    with ws.db() as conn:
        if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (name,)).fetchone():
            raise ConflictError(
                f"job {name!r} exists already",
                "pick another `name:` in the spec or drop it to get a fresh one",
            )
        conn.execute(
            "INSERT INTO jobs (name, experiment, spec, status, created_at) VALUES (?,?,?,?,?)",
            (name, experiment, spec_json, "queued", time.time()),
        )
        conn.executemany(
            "INSERT INTO stages (job, stage, position, status) VALUES (?,?,?,?)",
            [(name, s, i, "queued") for i, s in enumerate(STAGES)],
        )


def get(ws: Workspace, name: str) -> Job:
    with ws.db() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown job {name!r}", "list jobs with `chattune jobs list`")
        stages = conn.execute(
            "SELECT * FROM stages WHERE job = ? ORDER BY position", (name,)
        ).fetchall()
    return Job(
        name=row["name"],
        experiment=row["experiment"],
        spec=json.loads(row["spec"]),
        status=row["status"],
        pid=row["pid"],
        mlflow_run_id=row["mlflow_run_id"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        stages=[
            Stage(
                s["stage"],
                s["status"],
                s["note"],
                s["error"],
                s["started_at"],
                s["finished_at"],
                json.loads(s["outputs"]),
                s["cache_key"],
            )
            for s in stages
        ],
    )


def names(ws: Workspace) -> list[str]:
    with ws.db() as conn:
        return [r[0] for r in conn.execute("SELECT name FROM jobs ORDER BY created_at DESC")]


def update_job(ws: Workspace, name: str, **fields: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in fields)
    with ws.db() as conn:
        conn.execute(f"UPDATE jobs SET {sets} WHERE name = ?", (*fields.values(), name))


def update_stage(ws: Workspace, job: str, stage: str, **fields: Any) -> None:
    if "outputs" in fields:
        fields["outputs"] = dumps(fields["outputs"])
    sets = ", ".join(f"{k} = ?" for k in fields)
    with ws.db() as conn:
        conn.execute(
            f"UPDATE stages SET {sets} WHERE job = ? AND stage = ?", (*fields.values(), job, stage)
        )


def find_reusable(ws: Workspace, stage: str, cache_key: str) -> tuple[str, dict[str, Any]] | None:
    """A completed run of ``stage`` with the same cache key, in any job (newest first)."""
    with ws.db() as conn:
        row = conn.execute(
            "SELECT job, outputs FROM stages WHERE stage = ? AND cache_key = ? AND "
            "status = 'completed' ORDER BY finished_at DESC LIMIT 1",
            (stage, cache_key),
        ).fetchone()
    return (row["job"], json.loads(row["outputs"])) if row else None
