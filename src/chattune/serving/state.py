"""Endpoint and deployment records: the desired state the SDK writes, the observed state the
gateway writes back, both in the workspace database.

Writers never fight: the SDK sets ``creating``/``deleting`` and traffic; the gateway sets
``running``/``ready``/``failed`` and instances, and never overwrites ``deleting``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from chattune.workspace import Workspace, dumps

# Endpoint statuses: creating -> running -> deleting; dead when its gateway process is gone.
# Deployment statuses: creating -> ready (degraded/unhealthy while restarting) | failed;
# deleting until the gateway has stopped its workers.
DELETING = "deleting"


@dataclass(frozen=True)
class ProbeSettings:
    """A probe of worker health (Azure ML names; seconds)."""

    initial_delay: float
    """Liveness: the longest a worker may take to become ready (not a fixed wait)."""
    period: float = 10.0
    """Seconds between probes once the worker is ready."""
    timeout: float = 2.0
    """Seconds a probe may take before it counts as failed."""
    failure_threshold: int = 30
    """Consecutive failures before acting (restart for liveness, out of rotation for readiness)."""
    success_threshold: int = 1
    """Consecutive successes before a readiness-failed worker gets traffic again."""


@dataclass(frozen=True)
class DeploymentSettings:
    """How a deployment runs; stored as JSON in ``deployments.settings``."""

    instance_count: int = 1
    request_timeout_ms: int = 90_000
    max_concurrent_requests_per_instance: int = 1
    max_queue_wait_ms: int = 500
    liveness_probe: ProbeSettings = field(default_factory=lambda: ProbeSettings(600.0))
    readiness_probe: ProbeSettings = field(default_factory=lambda: ProbeSettings(0.0))
    max_batch_size: int = 8
    """Most requests run together in one ``generate`` call."""

    @classmethod
    def from_json(cls, text: str) -> DeploymentSettings:
        data = json.loads(text or "{}")
        for probe in ("liveness_probe", "readiness_probe"):
            if probe in data:
                data[probe] = ProbeSettings(**data[probe])
        return cls(**data)

    def to_json(self) -> str:
        return dumps(asdict(self))


@dataclass(frozen=True)
class DeploymentInfo:
    """One deployment of an endpoint, as :meth:`EndpointsAPI.get_deployment` returns it."""

    endpoint: str
    name: str
    model: str
    model_path: str
    status: str
    settings: DeploymentSettings
    instances: list[dict[str, Any]]
    error: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DeploymentInfo:
        return cls(
            endpoint=row["endpoint"],
            name=row["name"],
            model=row["model"],
            model_path=row["model_path"],
            status=row["status"],
            settings=DeploymentSettings.from_json(row["settings"]),
            instances=json.loads(row["instances"]),
            error=row["error"],
            created_at=row["created_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint, as :meth:`EndpointsAPI.get` returns it."""

    name: str
    status: str
    auth_mode: str
    host: str
    port: int | None
    pid: int | None
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    deployments: list[str]
    error: str | None
    created_at: float

    @property
    def base_url(self) -> str | None:
        return f"http://{self.host}:{self.port}" if self.port else None

    @property
    def scoring_uri(self) -> str | None:
        """``POST`` here with ``Authorization: Bearer <key>``: the ``/score`` contract."""
        return f"{self.base_url}/score" if self.port else None

    @property
    def openai_base_url(self) -> str | None:
        """``base_url`` for OpenAI clients (``/v1/chat/completions``, ``/v1/models``)."""
        return f"{self.base_url}/v1" if self.port else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(scoring_uri=self.scoring_uri, openai_base_url=self.openai_base_url)
        return data


def endpoint_row(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM endpoints WHERE name = ?", (name,)).fetchone()


def deployment_rows(conn: sqlite3.Connection, endpoint: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM deployments WHERE endpoint = ? ORDER BY created_at", (endpoint,)
    ).fetchall()


def set_endpoint(ws: Workspace, name: str, **values: Any) -> None:
    """Update an endpoint row unless it is being deleted (the SDK's word wins)."""
    columns = ", ".join(f"{key} = ?" for key in values)
    with ws.db() as conn:
        conn.execute(
            f"UPDATE endpoints SET {columns} WHERE name = ? AND status != ?",
            (*values.values(), name, DELETING),
        )


def set_deployment(ws: Workspace, endpoint: str, name: str, **values: Any) -> None:
    """Update a deployment row unless it is being deleted."""
    columns = ", ".join(f"{key} = ?" for key in values)
    with ws.db() as conn:
        conn.execute(
            f"UPDATE deployments SET {columns} WHERE endpoint = ? AND name = ? AND status != ?",
            (*values.values(), endpoint, name, DELETING),
        )
