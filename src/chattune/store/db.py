"""One database behind a URI: connections, transactions, dialect details, migrations.

SQLAlchemy Core with plain SQL text that SQLite and PostgreSQL both read. Every write runs
in one short transaction; on SQLite it takes the write lock up front (``BEGIN IMMEDIATE``)
so concurrent writers queue for ``timeout`` seconds instead of failing on a lock upgrade.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from chattune.errors import ConflictError, RuntimeFailure, ValidationError
from chattune.store.migrations import MIGRATIONS
from chattune.workspace import redact, split_password

BUSY_TIMEOUT_S = 30
Row = Mapping[str, Any]


class Database:
    """A migrated database; use :meth:`connect`, then :meth:`tx` for each unit of work."""

    def __init__(self, uri: str, engine: Engine) -> None:
        self.uri = split_password(uri)[0]  # what messages show: never the password
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def connect(cls, uri: str) -> Database:
        """Open ``uri`` (``sqlite:///PATH`` or ``postgresql://...``) and migrate its schema."""
        db = cls(uri, _engine(uri))
        db._migrate_when_free()
        return db

    def _migrate_when_free(self) -> None:
        # SQLite answers "database is locked" at once, without waiting for the busy timeout,
        # when a process's first connection meets another switching a new file to WAL or
        # recovering it; processes that start together (workers, parallel CLI calls) retry.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return self.migrate()
            except RuntimeFailure as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.02, 0.2))

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: OperationalError) -> RuntimeFailure:
        why = str(exc.orig).splitlines()[0]
        folder = sqlite_folder(self.uri)
        if folder is not None and not writable(folder):
            return RuntimeFailure(
                f"workspace folder {folder} is not writable ({why})",
                "make it writable (a read-only mount or a full disk?), or point "
                "CHATTUNE_WORKSPACE at a writable folder",
            )
        return RuntimeFailure(
            f"database {self.uri}: {why}",
            "check that the database is reachable and not locked by a stuck process",
        )

    def one(self, sql: str, **params: Any) -> Row | None:
        with self.tx() as conn:
            row = conn.execute(text(sql), params).mappings().first()
        return dict(row) if row is not None else None

    def all(self, sql: str, **params: Any) -> list[Row]:
        with self.tx() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]

    def run(self, sql: str, **params: Any) -> int:
        """Execute one statement; the number of rows it changed."""
        with self.tx() as conn:
            return conn.execute(text(sql), params).rowcount

    @contextmanager
    def unique(self, conflict: ConflictError) -> Iterator[None]:
        """Turn a primary-key clash into ``conflict`` (the row exists already)."""
        try:
            yield
        except IntegrityError:
            raise conflict from None

    def migrate(self) -> None:
        """Apply the numbered migrations not applied yet, one writer at a time."""
        with self.tx() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7305210)"))
            conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
                )
            )
            done = {r[0] for r in conn.execute(text("SELECT version FROM schema_migrations"))}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    conn.execute(text(statement))
                conn.execute(
                    text("INSERT INTO schema_migrations VALUES (:v, :t)"),
                    {"v": version, "t": _now()},
                )


def create_database(uri: str) -> bool:
    """Create the PostgreSQL database ``uri`` names when it is missing; True if created.

    SQLite files need nothing (they appear on first connect).
    """
    if not uri.startswith("postgresql"):
        return False
    from sqlalchemy.engine import make_url

    url = make_url(uri.replace("postgresql://", "postgresql+psycopg://", 1))
    name = url.database or ""
    if not name.replace("_", "").isalnum():
        raise ValidationError(
            f"database name {name!r} in {split_password(uri)[0]}",
            "use letters, digits and '_' only",
        )
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        return not exists
    except OperationalError as exc:
        raise RuntimeFailure(
            f"database server of {split_password(uri)[0]}: "
            + redact(str(exc.orig).splitlines()[0], uri),
            "check the URI, that the server runs, and that the user may create databases",
        ) from None
    finally:
        admin.dispose()


def sqlite_folder(uri: str) -> Path | None:
    """The folder of a ``sqlite:///FILE`` database (None for a server database)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]).parent if uri.startswith(prefix) else None


def writable(folder: Path) -> bool:
    """True when files can be created in ``folder`` (root ignores permissions, not a
    read-only mount, so this asks the file system itself)."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def dumps(value: Any) -> str:
    """JSON for a text column (stable key order)."""
    return json.dumps(value, sort_keys=True)


def assignments(fields: Mapping[str, Any], allowed: frozenset[str]) -> str:
    """``a = :a, b = :b`` for an UPDATE; only known column names (never user text)."""
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)}")
    return ", ".join(f"{key} = :{key}" for key in fields)


def _engine(uri: str) -> Engine:
    if uri.startswith("sqlite:///"):
        engine = create_engine(uri, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if uri.startswith(("postgresql://", "postgresql+psycopg://")):
        _require("psycopg", "pip install 'chattune[postgres]'")
        driver_uri = uri.replace("postgresql://", "postgresql+psycopg://", 1)
        return create_engine(driver_uri, pool_pre_ping=True, pool_size=2, max_overflow=8)
    raise ValidationError(
        f"database URI {split_password(uri)[0]!r} is not supported",
        "use sqlite:///PATH (default) or postgresql://USER@HOST:PORT/DB in config.yaml",
    )


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver must not open transactions on its own: the "begin" hook does, immediately.
    dbapi_conn.isolation_level = None
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute("PRAGMA foreign_keys=ON")
    dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


def _require(module: str, hint: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValidationError(f"the database driver {module!r} is not installed", hint)


def _now() -> float:
    return time.time()
