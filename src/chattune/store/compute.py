"""Compute target records: where jobs may run (``local`` is built in, never stored)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from chattune.errors import ConflictError
from chattune.store.db import Database, Row, dumps


@dataclass(frozen=True)
class TargetRecord:
    """A named compute target of the workspace."""

    name: str
    type: str
    address: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ComputeStore:
    """``compute_targets`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, target: TargetRecord) -> None:
        conflict = ConflictError(
            f"compute target {target.name} exists already",
            f"pick another name or `chattune compute delete {target.name}`",
        )
        with self.db.unique(conflict):
            self.db.run(
                "INSERT INTO compute_targets (name, type, address, settings, created_at) "
                "VALUES (:name, :type, :address, :settings, :now)",
                name=target.name,
                type=target.type,
                address=target.address,
                settings=dumps(target.settings),
                now=time.time(),
            )

    def get(self, name: str) -> TargetRecord | None:
        row = self.db.one("SELECT * FROM compute_targets WHERE name = :n", n=name)
        return _target(row) if row else None

    def list(self) -> list[TargetRecord]:
        return [_target(r) for r in self.db.all("SELECT * FROM compute_targets ORDER BY name")]

    def delete(self, name: str) -> bool:
        return self.db.run("DELETE FROM compute_targets WHERE name = :n", n=name) > 0


def _target(row: Row) -> TargetRecord:
    return TargetRecord(
        name=row["name"],
        type=row["type"],
        address=row["address"],
        settings=json.loads(row["settings"] or "{}"),
        created_at=row["created_at"],
    )
