"""Predicted and measured job resources, model version events and mirror pairs: the records
behind pre-flight estimates, promotion history and mirror comparison."""

from __future__ import annotations

import json
import time
from typing import Any

from chattune.store.db import Database, dumps

PREFLIGHT = "preflight:"
"""Prefix of the rows an estimate writes before any job uses it (clearly not a job)."""


class ResourceStore:
    """``job_resources``: one row per job (or pre-flight estimate), JSON predicted/actual."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, job: str, model: str, shape: str, predicted: dict[str, Any]) -> None:
        """Write (or replace) the prediction of ``job``; its actual figures are kept."""
        if self.get(job) is not None:
            self.db.run(
                "UPDATE job_resources SET predicted = :p, model = :model, shape = :shape "
                "WHERE job = :job",
                p=dumps(predicted),
                model=model,
                shape=shape,
                job=job,
            )
            return
        self.db.run(
            "INSERT INTO job_resources (job, model, shape, predicted, created_at) "
            "VALUES (:job, :model, :shape, :p, :now)",
            job=job,
            model=model,
            shape=shape,
            p=dumps(predicted),
            now=time.time(),
        )

    def set_actual(self, job: str, model: str, shape: str, actual: dict[str, Any]) -> None:
        """Record what ``job`` really took (a row without prediction is created)."""
        if self.get(job) is None:
            self.put(job, model, shape, {})
        self.db.run(
            "UPDATE job_resources SET actual = :a WHERE job = :job", a=dumps(actual), job=job
        )

    def get(self, job: str) -> dict[str, Any] | None:
        """``{"model", "shape", "predicted", "actual"}`` of ``job``, or None."""
        row = self.db.one("SELECT * FROM job_resources WHERE job = :job", job=job)
        return _record(row) if row else None

    def history(self, model: str, shape: str, limit: int = 5) -> list[dict[str, Any]]:
        """Finished jobs of the same model and shape with both figures, newest first."""
        rows = self.db.all(
            "SELECT * FROM job_resources WHERE model = :model AND shape = :shape AND "
            "actual != '{}' AND predicted != '{}' AND job NOT LIKE :pre "
            "ORDER BY created_at DESC LIMIT :limit",
            model=model,
            shape=shape,
            pre=PREFLIGHT + "%",
            limit=limit,
        )
        return [_record(r) for r in rows]

    def delete(self, job: str) -> None:
        self.db.run("DELETE FROM job_resources WHERE job = :job", job=job)


class ModelEventStore:
    """``model_events``: a registered version's history (forced promotions, ...)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, version: str, kind: str, message: str) -> None:
        self.db.run(
            "INSERT INTO model_events (name, version, at, kind, message) "
            "VALUES (:name, :version, :at, :kind, :message)",
            name=name,
            version=version,
            at=time.time(),
            kind=kind,
            message=message,
        )

    def list(self, name: str, version: str) -> list[dict[str, Any]]:
        rows = self.db.all(
            "SELECT at, kind, message FROM model_events WHERE name = :name AND "
            "version = :version ORDER BY at",
            name=name,
            version=version,
        )
        return [{"at": r["at"], "kind": r["kind"], "message": r["message"]} for r in rows]


class MirrorPairStore:
    """``mirror_pairs``: (live, mirror) answers the gateway kept, bounded per endpoint."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, endpoint: str, pair: dict[str, Any], cap: int, max_age_s: float) -> None:
        """Keep ``pair``; drop the endpoint's pairs older than ``max_age_s`` and beyond ``cap``."""
        now = time.time()
        with self.db.tx() as conn:
            from sqlalchemy import text

            conn.execute(
                text("INSERT INTO mirror_pairs (endpoint, at, pair) VALUES (:e, :at, :p)"),
                {"e": endpoint, "at": now, "p": dumps(pair)},
            )
            conn.execute(
                text("DELETE FROM mirror_pairs WHERE endpoint = :e AND at < :oldest"),
                {"e": endpoint, "oldest": now - max_age_s},
            )
            kept = conn.execute(
                text(
                    "SELECT at FROM mirror_pairs WHERE endpoint = :e ORDER BY at DESC "
                    "LIMIT 1 OFFSET :n"
                ),
                {"e": endpoint, "n": max(cap - 1, 0)},
            ).first()
            if kept is not None:
                conn.execute(
                    text("DELETE FROM mirror_pairs WHERE endpoint = :e AND at < :at"),
                    {"e": endpoint, "at": kept[0]},
                )

    def list(self, endpoint: str) -> list[dict[str, Any]]:
        """The endpoint's kept pairs, oldest first."""
        rows = self.db.all(
            "SELECT at, pair FROM mirror_pairs WHERE endpoint = :e ORDER BY at", e=endpoint
        )
        return [{"at": r["at"], **json.loads(r["pair"])} for r in rows]

    def count(self, endpoint: str) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM mirror_pairs WHERE endpoint = :e", e=endpoint)
        return int(row["n"]) if row else 0


def _record(row: Any) -> dict[str, Any]:
    return {
        "job": row["job"],
        "model": row["model"],
        "shape": row["shape"],
        "predicted": json.loads(row["predicted"]),
        "actual": json.loads(row["actual"]),
        "created_at": row["created_at"],
    }
