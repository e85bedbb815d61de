"""Registered model records: versions, labels, archive flag, lineage, state.

The record is the one source of truth of the registry: a version is registered when its row
is ``ready``. MLflow's registry and the version folder follow it (``chattune.registry``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, text

from chattune.errors import ConflictError
from chattune.store.db import Database, Row, dumps


class ModelState(StrEnum):
    """Where a version's record stands; only ``ready`` ones are listed or resolved."""

    PENDING = "pending"
    """Being registered: its folder may or may not be in place, MLflow may lack it."""
    READY = "ready"
    """Registered: folder complete, MLflow version made."""
    DELETING = "deleting"
    """Being deleted: MLflow version, folder, then this row go."""


@dataclass
class RegisteredModel:
    """A fine-tuned model version in the registry, with its lineage."""

    name: str
    version: str
    path: str
    job: str | None
    base_model: str | None
    description: str
    tags: dict[str, str]
    labels: list[str]
    lineage: dict[str, Any]
    created_at: float
    archived: bool = False
    mlflow_version: str | None = None
    state: ModelState = ModelState.READY

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def id(self) -> str:
        """``NAME:VERSION``, what a deployment's ``model`` takes (the same as :attr:`ref`)."""
        return self.ref

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ref": self.ref}


class ModelStore:
    """``models`` table. A label names at most one version of a model name."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, model: RegisteredModel) -> None:
        """Add a version; its labels (``latest``) move to it from the name's other versions."""
        conflict = ConflictError(
            f"model {model.ref} exists already",
            "pick another --version (or omit it for the next number)",
        )
        row = asdict(model) | {
            "tags": dumps(model.tags),
            "labels": dumps(model.labels),
            "lineage": dumps(model.lineage),
            "created_at": model.created_at or time.time(),
            "archived": int(model.archived),
            "state": str(model.state),
        }
        with self.db.unique(conflict), self.db.tx() as conn:
            self._lock_name(conn, model.name)
            for label in model.labels:
                _drop_label(conn, model.name, label)
            conn.execute(
                text(
                    "INSERT INTO models (name, version, path, job, base_model, description, "
                    "tags, labels, lineage, created_at, archived, mlflow_version, state) VALUES "
                    "(:name, :version, :path, :job, :base_model, :description, :tags, :labels, "
                    ":lineage, :created_at, :archived, :mlflow_version, :state)"
                ),
                row,
            )

    def mark_ready(self, name: str, version: str, mlflow_version: str, labels: list[str]) -> None:
        """A pending version becomes registered: its MLflow number, its labels (moved)."""
        with self.db.tx() as conn:
            self._lock_name(conn, name)
            for label in labels:
                _drop_label(conn, name, label)
            conn.execute(
                text(
                    "UPDATE models SET state = :s, mlflow_version = :m, labels = :l "
                    "WHERE name = :n AND version = :v"
                ),
                {"s": str(ModelState.READY), "m": mlflow_version, "l": dumps(labels)}
                | {"n": name, "v": version},
            )

    def mark_deleting(self, name: str, version: str) -> None:
        """Unlist a version before its parts go; its labels leave it."""
        self.db.run(
            "UPDATE models SET state = :s, labels = '[]' WHERE name = :n AND version = :v",
            s=str(ModelState.DELETING),
            n=name,
            v=version,
        )

    def unsettled(self, name: str | None = None) -> list[RegisteredModel]:
        """Versions a register or delete has not finished (oldest first)."""
        clause = " AND name = :name" if name else ""
        rows = self.db.all(
            f"SELECT * FROM models WHERE state <> 'ready'{clause} ORDER BY created_at",
            name=name,
        )
        return [_model(r) for r in rows]

    def set_label(self, name: str, version: str, label: str) -> None:
        """Put ``label`` on ``name:version``, taking it off the version that had it."""
        with self.db.tx() as conn:
            self._lock_name(conn, name)
            _drop_label(conn, name, label)
            labels = _labels(conn, name, version)
            _write_labels(conn, name, version, [*labels, label])

    def remove_label(self, name: str, version: str, label: str) -> bool:
        """Take ``label`` off ``name:version``; False when it did not carry it."""
        with self.db.tx() as conn:
            labels = _labels(conn, name, version)
            if label not in labels:
                return False
            _write_labels(conn, name, version, [x for x in labels if x != label])
            return True

    def update(self, name: str, version: str, **fields: Any) -> None:
        """Set ``archived`` and/or ``mlflow_version`` of one version."""
        allowed = {"archived", "mlflow_version"}
        if set(fields) - allowed:
            raise ValueError(f"unknown columns {sorted(set(fields) - allowed)}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        values = {k: int(v) if k == "archived" else v for k, v in fields.items()}
        self.db.run(
            f"UPDATE models SET {sets} WHERE name = :_n AND version = :_v",
            **values,
            _n=name,
            _v=version,
        )

    def delete(self, name: str, version: str) -> None:
        self.db.run(
            "DELETE FROM models WHERE name = :name AND version = :version",
            name=name,
            version=version,
        )

    def get(self, name: str, version: str) -> RegisteredModel | None:
        """One version's record, whatever its state."""
        row = self.db.one(
            "SELECT * FROM models WHERE name = :name AND version = :version",
            name=name,
            version=version,
        )
        return _model(row) if row else None

    def list(
        self, name: str | None = None, archived: bool = False, every_state: bool = False
    ) -> list[RegisteredModel]:
        """Ready versions newest first, optionally of one name; archived ones only when
        asked; unfinished ones (pending, deleting) too with ``every_state``."""
        where = ["name = :name"] if name else []
        if not every_state:
            where.append("state = 'ready'")
        if not archived:
            where.append("archived = 0")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.all(f"SELECT * FROM models{clause} ORDER BY created_at DESC", name=name)
        return [_model(r) for r in rows]

    def _lock_name(self, conn: Connection, name: str) -> None:
        if self.db.dialect == "postgresql":  # one writer per name moves labels
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})


def _labels(conn: Connection, name: str, version: str) -> list[str]:
    row = conn.execute(
        text("SELECT labels FROM models WHERE name = :n AND version = :v"),
        {"n": name, "v": version},
    ).first()
    return json.loads(row[0]) if row else []


def _write_labels(conn: Connection, name: str, version: str, labels: list[str]) -> None:
    conn.execute(
        text("UPDATE models SET labels = :l WHERE name = :n AND version = :v"),
        {"l": dumps(labels), "n": name, "v": version},
    )


def _drop_label(conn: Connection, name: str, label: str) -> None:
    rows = conn.execute(
        text("SELECT version, labels FROM models WHERE name = :n"), {"n": name}
    ).all()
    for version, labels in rows:
        if label in json.loads(labels):
            _write_labels(conn, name, version, [x for x in json.loads(labels) if x != label])


def _model(row: Row) -> RegisteredModel:
    return RegisteredModel(
        name=row["name"],
        version=row["version"],
        path=row["path"],
        job=row["job"],
        base_model=row["base_model"],
        description=row["description"],
        tags=json.loads(row["tags"]),
        labels=json.loads(row["labels"]),
        lineage=json.loads(row["lineage"]),
        created_at=row["created_at"],
        archived=bool(row.get("archived", 0)),
        mlflow_version=row.get("mlflow_version"),
        state=ModelState(row.get("state") or ModelState.READY),
    )
