"""Job and stage records: the one place that reads and writes them."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from chattune.errors import ConflictError, NotFoundError
from chattune.store.db import Database, Row, assignments, dumps

TERMINAL = ("completed", "failed", "canceled")
_JOB_COLUMNS = frozenset(
    {
        "status",
        "pid",
        "mlflow_run_id",
        "error",
        "started_at",
        "finished_at",
        "parameters",
        "submission",
        "resumes",
        "queued_at",
    }
)
_STAGE_COLUMNS = frozenset(
    {"status", "cache_key", "outputs", "note", "error", "started_at", "finished_at"}
)


@dataclass
class Stage:
    """One pipeline step's state; ``outputs`` is its typed result, as JSON."""

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
    """A pipeline job: its spec as written, the parameters it really uses, state, stages."""

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
    parameters: dict[str, Any] = field(default_factory=dict)
    """``{name: {"value": v, "source": "spec" | "model card" | "default"}}``."""
    compute: str = "local"
    """The compute target it runs on."""
    submission: str | None = None
    """Its handle on that target (a Ray Jobs submission id); None for local processes."""
    resumes: list[dict[str, Any]] = field(default_factory=list)
    """Each resume: ``{"at": time, "checkpoint": name or None, "step": N or None}``."""
    queued_at: float | None = None
    """Its place in its compute target's queue: when it was created or last resumed."""
    queue_position: int | None = None
    """1 = next to run on its target (set by the jobs API for queued jobs; not stored)."""

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


class JobStore:
    """``jobs`` and ``stages`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(
        self,
        name: str,
        experiment: str,
        spec: dict[str, Any],
        stages: Sequence[str],
        parameters: dict[str, Any] | None = None,
        compute: str = "local",
    ) -> None:
        conflict = ConflictError(
            f"job {name!r} exists already",
            "pick another `name:` in the spec or drop it to get a fresh one",
        )
        with self.db.unique(conflict), self.db.tx() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (name, experiment, spec, status, created_at, parameters, "
                    "compute, queued_at) VALUES (:name, :experiment, :spec, 'queued', :now, "
                    ":parameters, :compute, :now)"
                ),
                {
                    "name": name,
                    "experiment": experiment,
                    "spec": dumps(spec),
                    "now": time.time(),
                    "parameters": dumps(parameters or {}),
                    "compute": compute,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO stages (job, stage, position, status) "
                    "VALUES (:job, :stage, :position, 'queued')"
                ),
                [{"job": name, "stage": s, "position": i} for i, s in enumerate(stages)],
            )

    def get(self, name: str) -> Job:
        with self.db.tx() as conn:
            row = conn.execute(text("SELECT * FROM jobs WHERE name = :n"), {"n": name})
            job = row.mappings().first()
            if job is None:
                raise NotFoundError(f"unknown job {name!r}", "list jobs with `chattune jobs list`")
            stages = conn.execute(
                text("SELECT * FROM stages WHERE job = :n ORDER BY position"), {"n": name}
            ).mappings()
            return _job(dict(job), [_stage(dict(s)) for s in stages])

    def names(self) -> list[str]:
        """Every job name, newest first."""
        return [r["name"] for r in self.db.all("SELECT name FROM jobs ORDER BY created_at DESC")]

    def queue(self, compute: str) -> list[tuple[str, str, int | None, float]]:
        """Unfinished jobs on ``compute`` in queue order: ``(name, status, pid, queued_at)``."""
        rows = self.db.all(
            "SELECT name, status, pid, queued_at, created_at FROM jobs WHERE compute = :c "
            "AND status NOT IN ('completed', 'failed', 'canceled') "
            "ORDER BY COALESCE(queued_at, created_at), name",
            c=compute,
        )
        return [(r["name"], r["status"], r["pid"], r["queued_at"] or r["created_at"]) for r in rows]

    def update(self, name: str, **fields: Any) -> None:
        for column in ("parameters", "resumes"):
            if column in fields:
                fields[column] = dumps(fields[column])
        sets = assignments(fields, _JOB_COLUMNS)
        self.db.run(f"UPDATE jobs SET {sets} WHERE name = :_name", **fields, _name=name)

    def update_stage(self, job: str, stage: str, **fields: Any) -> None:
        if "outputs" in fields:
            fields["outputs"] = dumps(fields["outputs"])
        sets = assignments(fields, _STAGE_COLUMNS)
        self.db.run(
            f"UPDATE stages SET {sets} WHERE job = :_job AND stage = :_stage",
            **fields,
            _job=job,
            _stage=stage,
        )

    def find_reusable(self, stage: str, cache_key: str) -> tuple[str, dict[str, Any]] | None:
        """A completed run of ``stage`` with the same cache key, in any job (newest first)."""
        row = self.db.one(
            "SELECT job, outputs FROM stages WHERE stage = :stage AND cache_key = :key AND "
            "status = 'completed' ORDER BY finished_at DESC LIMIT 1",
            stage=stage,
            key=cache_key,
        )
        return (row["job"], json.loads(row["outputs"])) if row else None


def _job(row: Row, stages: list[Stage]) -> Job:
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
        stages=stages,
        parameters=json.loads(row["parameters"] or "{}"),
        compute=row["compute"],
        submission=row["submission"],
        resumes=json.loads(row["resumes"] or "[]"),
        queued_at=row["queued_at"],
    )


def _stage(row: Row) -> Stage:
    return Stage(
        name=row["stage"],
        status=row["status"],
        note=row["note"],
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outputs=json.loads(row["outputs"]),
        cache_key=row["cache_key"],
    )
