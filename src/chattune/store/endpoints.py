"""Endpoint and deployment records: the desired state the SDK writes and the observed state
the gateway writes back.

Writers never fight: the SDK sets ``creating``/``deleting`` and traffic; the gateway sets
``running``/``ready``/``failed`` and instances, and never overwrites ``deleting``.
"""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from chattune.errors import ConflictError
from chattune.store.db import Database, Row, assignments, dumps

DELETING = "deleting"
_ENDPOINT_COLUMNS = frozenset({"host", "port", "pid", "status", "error"})
_DEPLOYMENT_COLUMNS = frozenset({"status", "instances", "error"})


@dataclass(frozen=True)
class EndpointRecord:
    """An endpoint row."""

    name: str
    host: str
    port: int | None
    pid: int | None
    auth_mode: str
    status: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    error: str | None
    created_at: float
    description: str = ""


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment row; ``settings`` is the serving layer's settings model, as JSON."""

    endpoint: str
    name: str
    model: str
    model_path: str
    settings: dict[str, Any]
    status: str
    instances: list[dict[str, Any]]
    error: str | None
    created_at: float


class EndpointStore:
    """``endpoints`` and ``deployments`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- endpoints ----------------------------------------------------------------------

    def insert(self, name: str, host: str, auth_mode: str, description: str = "") -> None:
        conflict = ConflictError(
            f"endpoint {name} already exists",
            f"pick another name or `chattune endpoints delete {name}`",
        )
        with self.db.unique(conflict):
            self.db.run(
                "INSERT INTO endpoints (name, host, auth_mode, status, created_at, description) "
                "VALUES (:name, :host, :auth_mode, 'creating', :now, :description)",
                name=name,
                host=host,
                auth_mode=auth_mode,
                description=description,
                now=time.time(),
            )

    def get(self, name: str) -> EndpointRecord | None:
        row = self.db.one("SELECT * FROM endpoints WHERE name = :name", name=name)
        return _endpoint(row) if row else None

    def list(self) -> list[EndpointRecord]:
        """Every endpoint, oldest first."""
        return [_endpoint(r) for r in self.db.all("SELECT * FROM endpoints ORDER BY created_at")]

    def update(self, name: str, **fields: Any) -> None:
        """Observed state from the gateway; never overwrites ``deleting`` (the SDK's word)."""
        sets = assignments(fields, _ENDPOINT_COLUMNS)
        self.db.run(
            f"UPDATE endpoints SET {sets} WHERE name = :_name AND status != :_deleting",
            **fields,
            _name=name,
            _deleting=DELETING,
        )

    def set_traffic(self, name: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        self.db.run(
            "UPDATE endpoints SET traffic = :traffic, mirror_traffic = :mirror WHERE name = :name",
            traffic=dumps(traffic),
            mirror=dumps(mirror),
            name=name,
        )

    def mark_deleting(self, name: str) -> None:
        self.db.run("UPDATE endpoints SET status = :s WHERE name = :name", s=DELETING, name=name)

    def delete(self, name: str) -> None:
        """Remove the endpoint and its deployments."""
        with self.db.tx() as conn:
            conn.execute(text("DELETE FROM deployments WHERE endpoint = :n"), {"n": name})
            conn.execute(text("DELETE FROM endpoints WHERE name = :n"), {"n": name})

    def delete_if_deleting(self, name: str) -> bool:
        """Finish a ``delete --no-wait`` once the workers are stopped; True if it was."""
        with self.db.tx() as conn:
            status = conn.execute(
                text("SELECT status FROM endpoints WHERE name = :n"), {"n": name}
            ).scalar()
            if status != DELETING:
                return False
            conn.execute(text("DELETE FROM deployments WHERE endpoint = :n"), {"n": name})
            conn.execute(text("DELETE FROM endpoints WHERE name = :n"), {"n": name})
        return True

    # --- deployments --------------------------------------------------------------------

    def insert_deployment(
        self, endpoint: str, name: str, model: str, model_path: str, settings: dict[str, Any]
    ) -> None:
        conflict = ConflictError(
            f"deployment {name} already exists on endpoint {endpoint}",
            f"pick another name or `chattune deployments delete {name} --endpoint {endpoint}`",
        )
        with self.db.unique(conflict):
            self.db.run(
                "INSERT INTO deployments (endpoint, name, model, model_path, settings, status, "
                "created_at) VALUES (:endpoint, :name, :model, :path, :settings, 'creating', :now)",
                endpoint=endpoint,
                name=name,
                model=model,
                path=model_path,
                settings=dumps(settings),
                now=time.time(),
            )

    def get_deployment(self, endpoint: str, name: str) -> DeploymentRecord | None:
        row = self.db.one(
            "SELECT * FROM deployments WHERE endpoint = :endpoint AND name = :name",
            endpoint=endpoint,
            name=name,
        )
        return _deployment(row) if row else None

    def deployments(self, endpoint: str) -> builtins.list[DeploymentRecord]:
        """The endpoint's deployments, oldest first."""
        rows = self.db.all(
            "SELECT * FROM deployments WHERE endpoint = :e ORDER BY created_at", e=endpoint
        )
        return [_deployment(r) for r in rows]

    def update_deployment(self, endpoint: str, name: str, **fields: Any) -> None:
        """Observed state from the gateway; never overwrites ``deleting``."""
        if "instances" in fields:
            fields["instances"] = dumps(fields["instances"])
        sets = assignments(fields, _DEPLOYMENT_COLUMNS)
        self.db.run(
            f"UPDATE deployments SET {sets} "
            "WHERE endpoint = :_endpoint AND name = :_name AND status != :_deleting",
            **fields,
            _endpoint=endpoint,
            _name=name,
            _deleting=DELETING,
        )

    def set_deployment_settings(
        self, endpoint: str, name: str, settings: dict[str, Any], error: str | None = None
    ) -> None:
        """New settings for a deployment (its gateway rolls its workers onto them), and the
        error of the last update; never touches one being deleted."""
        self.db.run(
            "UPDATE deployments SET settings = :settings, error = :error "
            "WHERE endpoint = :e AND name = :n AND status != :deleting",
            settings=dumps(settings),
            error=error,
            e=endpoint,
            n=name,
            deleting=DELETING,
        )

    def mark_deployment_deleting(self, endpoint: str, name: str, *, remove: bool) -> None:
        """Ask the gateway to stop it; ``remove`` at once when no gateway runs."""
        with self.db.tx() as conn:
            params = {"e": endpoint, "n": name, "s": DELETING}
            conn.execute(
                text("UPDATE deployments SET status = :s WHERE endpoint = :e AND name = :n"),
                params,
            )
            if remove:
                conn.execute(
                    text("DELETE FROM deployments WHERE endpoint = :e AND name = :n"), params
                )

    def purge_deleted_deployments(self, endpoint: str) -> None:
        """Drop deployments marked deleting (the gateway has stopped their workers)."""
        self.db.run(
            "DELETE FROM deployments WHERE endpoint = :e AND status = :s", e=endpoint, s=DELETING
        )


def _endpoint(row: Row) -> EndpointRecord:
    return EndpointRecord(
        name=row["name"],
        host=row["host"],
        port=row["port"],
        pid=row["pid"],
        auth_mode=row["auth_mode"],
        status=row["status"],
        traffic=json.loads(row["traffic"]),
        mirror_traffic=json.loads(row["mirror_traffic"]),
        error=row["error"],
        created_at=row["created_at"],
        description=row["description"] or "",
    )


def _deployment(row: Row) -> DeploymentRecord:
    return DeploymentRecord(
        endpoint=row["endpoint"],
        name=row["name"],
        model=row["model"],
        model_path=row["model_path"],
        settings=json.loads(row["settings"] or "{}"),
        status=row["status"],
        instances=json.loads(row["instances"]),
        error=row["error"],
        created_at=row["created_at"],
    )
