"""Registered model records: versions, labels, lineage."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text

from chattune.errors import ConflictError
from chattune.store.db import Database, Row, dumps


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

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ref": self.ref}


class ModelStore:
    """``models`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, model: RegisteredModel) -> None:
        """Add a version; ``latest`` moves to it from the name's other versions."""
        conflict = ConflictError(
            f"model {model.ref} exists already",
            "pick another --version (or omit it for the next number)",
        )
        row = asdict(model) | {
            "tags": dumps(model.tags),
            "labels": dumps(model.labels),
            "lineage": dumps(model.lineage),
            "created_at": model.created_at or time.time(),
        }
        with self.db.unique(conflict), self.db.tx() as conn:
            if self.db.dialect == "postgresql":  # one writer per name moves `latest`
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": model.name})
            if "latest" in model.labels:
                conn.execute(
                    text("UPDATE models SET labels = '[]' WHERE name = :name"), {"name": model.name}
                )
            conn.execute(
                text(
                    "INSERT INTO models (name, version, path, job, base_model, description, "
                    "tags, labels, lineage, created_at) VALUES (:name, :version, :path, :job, "
                    ":base_model, :description, :tags, :labels, :lineage, :created_at)"
                ),
                row,
            )

    def delete(self, name: str, version: str) -> None:
        self.db.run(
            "DELETE FROM models WHERE name = :name AND version = :version",
            name=name,
            version=version,
        )

    def get(self, name: str, version: str) -> RegisteredModel | None:
        row = self.db.one(
            "SELECT * FROM models WHERE name = :name AND version = :version",
            name=name,
            version=version,
        )
        return _model(row) if row else None

    def list(self, name: str | None = None) -> list[RegisteredModel]:
        """Versions newest first, optionally of one name."""
        where = " WHERE name = :name" if name else ""
        rows = self.db.all(f"SELECT * FROM models{where} ORDER BY created_at DESC", name=name)
        return [_model(r) for r in rows]


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
    )
