"""Every SQL statement and row→object conversion: one small store per kind of record.

>>> from chattune.store import open_store
>>> store = open_store("sqlite:////tmp/ws/chattune.db")
>>> store.jobs.names()
[]

The database is chosen by URI (the workspace config's ``database``): SQLite embedded by
default; nothing outside this package knows which one is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chattune.store.compute import ComputeStore
    from chattune.store.db import Database
    from chattune.store.endpoints import EndpointStore
    from chattune.store.jobs import JobStore
    from chattune.store.models import ModelStore
    from chattune.workspace import Workspace

_OPEN: dict[str, Store] = {}


@dataclass(frozen=True)
class Store:
    """The stores of one database: ``jobs``, ``models``, ``endpoints``, ``compute``."""

    db: Database
    jobs: JobStore
    models: ModelStore
    endpoints: EndpointStore
    compute: ComputeStore


def open_store(uri: str) -> Store:
    """The store at ``uri`` (migrated to the current schema); one per URI and process."""
    if uri not in _OPEN:
        from chattune.store.compute import ComputeStore
        from chattune.store.db import Database
        from chattune.store.endpoints import EndpointStore
        from chattune.store.jobs import JobStore
        from chattune.store.models import ModelStore

        db = Database.connect(uri)
        _OPEN[uri] = Store(db, JobStore(db), ModelStore(db), EndpointStore(db), ComputeStore(db))
    return _OPEN[uri]


def workspace_store(ws: Workspace) -> Store:
    """The store of workspace ``ws`` (its config's ``database`` URI), creating the workspace
    folder on first use."""
    ws.ensure()
    return open_store(ws.database_connect_uri)
