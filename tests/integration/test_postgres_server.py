"""The throwaway PostgreSQL server of tests/postgres.py: SQLAlchemy + psycopg, concurrent
writers in separate processes, MLflow's tracking store in a second database, clean stop."""

from __future__ import annotations

import multiprocessing
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, _alive, _children, start_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WRITERS = 10
ROWS_PER_WRITER = 50


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = start_postgres(tmp_path_factory.mktemp("pg"))
    pids = [server.pid, *_children(server.pid)]
    yield server
    server.stop()
    assert not [pid for pid in pids if _alive(pid)]


def test_sqlalchemy_create_insert_select(server: PostgresServer) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(server.uri())
    notes = sa.Table(
        "notes",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("extra", sa.JSON),
    )
    try:
        notes.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                notes.insert(),
                [{"body": "héllo", "extra": {"k": [1, 2]}}, {"body": "b", "extra": None}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(notes.c.body, notes.c.extra).order_by(notes.c.id)).all()
            assert conn.execute(sa.text("select current_database()")).scalar() == "chattune"
            assert conn.dialect.driver == "psycopg"
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("héllo", {"k": [1, 2]}), ("b", None)]


def _writer(uri: str, worker: int, barrier) -> None:
    """One process: insert its rows one transaction each, and bump a shared counter."""
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    barrier.wait(timeout=60)  # all processes write at the same time
    try:
        for seq in range(ROWS_PER_WRITER):
            with engine.begin() as conn:
                conn.execute(
                    sa.text("insert into events (worker, seq) values (:w, :s)"),
                    {"w": worker, "s": seq},
                )
                conn.execute(sa.text("update counter set n = n + 1 where id = 1"))
    finally:
        engine.dispose()


def test_concurrent_processes_insert_every_row_once(server: PostgresServer) -> None:
    import sqlalchemy as sa

    uri = server.create_database("concurrency")
    engine = sa.create_engine(uri)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "create table events (id bigserial primary key,"
                    " worker int not null, seq int not null)"
                )
            )
            conn.execute(sa.text("create table counter (id int primary key, n int not null)"))
            conn.execute(sa.text("insert into counter values (1, 0)"))

        ctx = multiprocessing.get_context("spawn")  # no inherited connections or threads
        barrier = ctx.Barrier(WRITERS)
        procs = [ctx.Process(target=_writer, args=(uri, w, barrier)) for w in range(WRITERS)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
        assert [proc.exitcode for proc in procs] == [0] * WRITERS

        with engine.connect() as conn:
            pairs = conn.execute(
                sa.text("select worker, seq, count(*) from events group by worker, seq")
            ).all()
            counter = conn.execute(sa.text("select n from counter")).scalar()
    finally:
        engine.dispose()
    expected = {(w, s) for w in range(WRITERS) for s in range(ROWS_PER_WRITER)}
    assert {(w, s) for w, s, _ in pairs} == expected
    assert all(count == 1 for _, _, count in pairs)
    assert counter == WRITERS * ROWS_PER_WRITER


def test_mlflow_tracking_store_in_its_own_database(
    server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import sqlalchemy as sa

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    uri = server.create_database("mlflow")
    client = mlflow.MlflowClient(tracking_uri=uri)  # first use runs MLflow's migrations
    experiment_id = client.create_experiment("pg-check", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment_id, run_name="first")
    for step, loss in enumerate([1.0, 0.5, 0.25]):
        client.log_metric(run.info.run_id, "loss", loss, step=step)
    client.log_param(run.info.run_id, "lr", "0.001")
    client.set_terminated(run.info.run_id)

    again = mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id)
    assert again.info.status == "FINISHED"
    assert again.data.params == {"lr": "0.001"}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert client.get_experiment_by_name("pg-check").experiment_id == experiment_id

    def tables(database_uri: str) -> set[str]:
        engine = sa.create_engine(database_uri)
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    assert {"experiments", "runs", "metrics", "alembic_version"} <= tables(uri)
    assert not {"experiments", "runs", "metrics"} & tables(server.uri())  # chattune db untouched


def test_stop_leaves_nothing_running(tmp_path: Path) -> None:
    other = start_postgres(tmp_path)
    pids = [other.pid, *_children(other.pid)]
    assert other.running() and len(pids) > 1
    other.stop()
    assert not other.running()
    assert not [pid for pid in pids if _alive(pid)]
    with socket.socket() as sock:  # nothing listens on the port any more
        assert sock.connect_ex(("127.0.0.1", other.port)) != 0
    other.stop()  # idempotent
