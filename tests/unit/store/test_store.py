"""The store on SQLite: migrations, records, conflicts, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from chattune.errors import ConflictError, NotFoundError, RuntimeFailure
from chattune.store import open_store
from chattune.store.migrations import MIGRATIONS
from chattune.store.models import ModelState, RegisteredModel

BOTH = pytest.mark.parametrize(
    "database_uri",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])],
    indirect=True,
)


def test_migrations_are_recorded_once_and_upgrade_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # A workspace database from before numbered migrations: tables, no migration table.
    conn = sqlite3.connect(path)
    conn.executescript("\n;".join(MIGRATIONS[0][1]))
    conn.execute("INSERT INTO jobs VALUES ('j', 'e', '{}', 'completed', NULL, NULL, NULL, 1, 1, 1)")
    conn.commit()
    conn.close()
    store = open_store(f"sqlite:///{path}")
    assert store.jobs.get("j").parameters == {}
    versions = [r["version"] for r in store.db.all("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in MIGRATIONS]
    store.db.migrate()  # idempotent
    assert len(store.db.all("SELECT version FROM schema_migrations")) == len(MIGRATIONS)


@BOTH
def test_jobs_roundtrip_and_conflict(database_uri: str) -> None:
    jobs = open_store(database_uri).jobs
    jobs.insert("a", "exp", {"model": "m"}, ["validate", "finetune"], {"lr": {"value": 1}})
    with pytest.raises(ConflictError, match="exists already"):
        jobs.insert("a", "exp", {}, ["validate"])
    jobs.update("a", status="running", pid=7)
    jobs.update_stage("a", "validate", status="completed", cache_key="k", outputs={"x": 1})
    job = jobs.get("a")
    assert (job.status, job.pid, job.parameters) == ("running", 7, {"lr": {"value": 1}})
    assert [s.name for s in job.stages] == ["validate", "finetune"]
    assert jobs.find_reusable("validate", "k") == ("a", {"x": 1})
    assert jobs.find_reusable("validate", "other") is None
    with pytest.raises(ValueError, match="unknown columns"):
        jobs.update("a", **{"status = 'x' --": 1})
    with pytest.raises(NotFoundError):
        jobs.get("nope")


@BOTH
def test_registering_moves_latest(database_uri: str) -> None:
    models = open_store(database_uri).models
    for version in ("1", "2"):
        models.insert(RegisteredModel("m", version, "/p", None, None, "", {}, ["latest"], {}, 0.0))
    assert {m.version: m.labels for m in models.list("m")} == {"1": [], "2": ["latest"]}
    with pytest.raises(ConflictError, match="m:2 exists"):
        models.insert(RegisteredModel("m", "2", "/p", None, None, "", {}, [], {}, 0.0))


@BOTH
def test_only_ready_versions_list_and_unsettled_ones_are_found(database_uri: str) -> None:
    models = open_store(database_uri).models
    models.insert(RegisteredModel("m", "1", "/p", None, None, "", {}, ["latest"], {}, 1.0))
    pending = RegisteredModel(
        "m", "2", "/p", None, None, "", {}, [], {}, 2.0, state=ModelState.PENDING
    )
    models.insert(pending)
    assert [m.version for m in models.list("m")] == ["1"]
    assert [m.version for m in models.list("m", every_state=True)] == ["2", "1"]
    assert [(m.version, m.state) for m in models.unsettled()] == [("2", "pending")]
    models.mark_ready("m", "2", "7", ["latest"])
    assert {m.version: (m.labels, m.mlflow_version) for m in models.list("m")} == {
        "1": ([], None),
        "2": (["latest"], "7"),
    }
    models.mark_deleting("m", "2")
    assert [(m.version, m.state, m.labels) for m in models.unsettled("m")] == [
        ("2", "deleting", [])
    ]
    assert [m.version for m in models.list()] == ["1"] and models.unsettled("other") == []


@BOTH
def test_endpoint_rows_respect_deleting(database_uri: str) -> None:
    eps = open_store(database_uri).endpoints
    eps.insert("ep1", "127.0.0.1", "key")
    eps.insert_deployment("ep1", "blue", "m:1", "/p", {"instance_count": 1})
    eps.mark_deleting("ep1")
    eps.update("ep1", status="running", port=1)  # the gateway cannot undo a delete
    assert eps.get("ep1").status == "deleting"
    assert eps.delete_if_deleting("ep1")
    assert eps.get("ep1") is None and eps.deployments("ep1") == []


@BOTH
def test_an_endpoint_keeps_its_description(database_uri: str) -> None:
    eps = open_store(database_uri).endpoints
    eps.insert("ep1", "127.0.0.1", "key", "Online endpoint for tuned, fine tuned on ultrachat")
    eps.insert("ep2", "127.0.0.1", "key")
    assert eps.get("ep1").description == "Online endpoint for tuned, fine tuned on ultrachat"
    assert eps.get("ep2").description == ""


def _write(uri: str, worker: int) -> None:
    store = open_store(uri)  # every process migrates first: they race on that too
    for i in range(10):
        store.jobs.insert(f"w{worker}-{i}", "e", {}, ["validate"])
        model = RegisteredModel("m", f"{worker}.{i}", "/p", None, None, "", {}, ["latest"], {}, 0)
        store.models.insert(model)


@BOTH
def test_ten_concurrent_writers_lose_nothing(database_uri: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(database_uri, w)) for w in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 10
    store = open_store(database_uri)
    assert len(set(store.jobs.names())) == 100
    versions = store.models.list("m")
    assert len({m.version for m in versions}) == 100
    assert sum("latest" in m.labels for m in versions) == 1


def test_a_lock_met_while_migrating_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite can answer "database is locked" at once (no busy wait) to a process that opens a
    # new WAL file while another sets it up: opening the store retries instead of failing.
    from chattune.store.db import Database

    real, calls = Database.migrate, []

    def locked_once(self: Database) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeFailure("database x: database is locked", "wait")
        real(self)

    monkeypatch.setattr(Database, "migrate", locked_once)
    store = open_store(f"sqlite:///{tmp_path}/chattune.db")
    assert len(calls) == 2 and store.jobs.names() == []
