"""The workspace: one folder holding config, metadata database, MLflow store and artifacts.

Found the same way by every command: an explicit path, else ``$CHATTUNE_WORKSPACE``, else
``./.chattune``. Created on first use (like ``mlruns/``); ``chattune init`` creates it up front.

Layout::

    .chattune/
      config.yaml        workspace settings (database URI, default host)
      chattune.db        metadata: jobs, stages, registered models, endpoints (SQLite, WAL)
      mlflow.db          MLflow tracking store (SQLite backend); artifacts in mlartifacts/
      jobs/NAME/         one folder per pipeline job: spec, logs, stage outputs
      models/NAME/VER/   registered model artifacts (MLflow-format models)
      endpoints/NAME/    endpoint keys (0600), gateway and worker logs
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chattune.errors import ValidationError

DEFAULT_DIR = ".chattune"
ENV_VAR = "CHATTUNE_WORKSPACE"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    mlflow_run_id TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS stages (
    job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    cache_key TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    note TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (job, stage)
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    path TEXT NOT NULL,
    job TEXT,
    base_model TEXT,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '[]',
    lineage TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER,
    pid INTEGER,
    auth_mode TEXT NOT NULL,
    status TEXT NOT NULL,
    traffic TEXT NOT NULL DEFAULT '{}',
    mirror_traffic TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    endpoint TEXT NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    model_path TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    instances TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (endpoint, name)
);
"""


@dataclass(frozen=True)
class Workspace:
    """A chattune workspace folder. Use :meth:`find` or :meth:`init` to get one."""

    root: Path

    @classmethod
    def find(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace at ``path``, else ``$CHATTUNE_WORKSPACE``, else ``./.chattune``.

        Created if absent, like ``mlruns/``.
        """
        chosen = path or os.environ.get(ENV_VAR) or DEFAULT_DIR
        return cls.init(chosen)

    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> Workspace:
        """Create (or open) the workspace folder at ``path``; idempotent."""
        root = Path(path).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ValidationError(
                f"workspace path {root} is a file", "pass a folder to `chattune init DIR`"
            )
        ws = cls(root)
        for sub in ("jobs", "models", "endpoints", "mlartifacts"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        if not ws.config_path.exists():
            config = {"database": f"sqlite:///{ws.db_path}", "host": "127.0.0.1"}
            write_atomic(ws.config_path, yaml.safe_dump(config, sort_keys=False))
        conn = sqlite3.connect(ws.db_path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.commit()
        finally:
            conn.close()
        return ws

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def db_path(self) -> Path:
        return self.root / "chattune.db"

    @property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_path.read_text()) or {}

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking URI: ``mlflow ui --backend-store-uri <this>`` shows every run."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return (self.root / "mlartifacts").as_uri()

    def job_dir(self, name: str) -> Path:
        return self.root / "jobs" / name

    def model_dir(self, name: str, version: str) -> Path:
        return self.root / "models" / name / version

    def endpoint_dir(self, name: str) -> Path:
        return self.root / "endpoints" / name

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A connection to the metadata database; commits on success, rolls back on error."""
        database = self.config.get("database", "") if self.config_path.exists() else ""
        if database and not database.startswith("sqlite:///"):
            raise ValidationError(
                f"database {database!r} in {self.config_path}: only sqlite:/// is supported yet",
                "set `database: sqlite:///<path>` in config.yaml",
            )
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode if mode is not None else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def dumps(value: Any) -> str:
    """JSON for a database column (stable key order)."""
    return json.dumps(value, sort_keys=True)
