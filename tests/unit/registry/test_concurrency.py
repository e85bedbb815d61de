"""Registering from several processes at once: one winner per version, distinct automatic
versions, and a register killed at any moment never leaves a version that lists but does
not load."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chattune import Client
from chattune.registry.api import hf_folder


def _register_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chattune", "models", "register", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


def test_five_registers_of_one_version_one_wins_four_get_one_line(
    workspace: Path, completed_job: str
) -> None:
    procs = [
        _register_cli("--job", completed_job, "--name", "m", "--version", "1") for _ in range(5)
    ]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    assert sorted(rc for rc, _, _ in results) == [0, 4, 4, 4, 4], results
    for rc, _out, err in results:
        if rc:
            assert err.strip().splitlines() == [
                "error: model m:1 exists already "
                "(fix: pick another --version (or omit it for the next number))"
            ]
    assert [m.ref for m in Client(workspace).models.list()] == ["m:1"]
    assert _complete(Client(workspace), "m", "1")


def _register_auto(workspace: str, job: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import chattune.store as store

    store._OPEN.clear()  # a forked child opens its own database connections
    try:
        queue.put(Client(workspace).models.register(job=job, name="auto").version)
    except Exception as exc:
        queue.put(f"error: {exc}")


def test_ten_parallel_auto_versions_are_distinct(workspace: Path, completed_job: str) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_register_auto, args=(str(workspace), completed_job, queue))
        for _ in range(10)
    ]
    for p in procs:
        p.start()
    versions = sorted(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert sorted(versions, key=int) == [str(n) for n in range(1, 11)], versions
    listed = Client(workspace).models.list("auto")
    assert len(listed) == 10 and sum("latest" in m.labels for m in listed) == 1


def _complete(client: Client, name: str, version: str) -> bool:
    """Every file of the job's package is in the version's folder, same size."""
    model = client.models.show(name, version)
    source = Path(
        client.models.store.jobs.get(model.job or "")
        .stage("package")
        .outputs["mlflow_model_folder"]
    )
    for f in source.rglob("*"):
        if f.is_file():
            mine = Path(model.path) / f.relative_to(source)
            if not mine.is_file() or mine.stat().st_size != f.stat().st_size:
                return False
    return (hf_folder(model.path) / "config.json").is_file()


def _register_one(workspace: str, job: str) -> None:
    import chattune.store as store

    store._OPEN.clear()  # a forked child opens its own database connections
    Client(workspace).models.register(job=job, name="k")


def _kill_at_random_moments(workspace: Path, job: str, kills: int, seed: int) -> None:
    # Forked from this (already imported) process, so the kills land inside the register
    # itself — staging, the lock, the rename, the store row, MLflow — not in start-up.
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(seed)
    started = time.monotonic()
    first = ctx.Process(target=_register_one, args=(str(workspace), job))
    first.start()
    first.join(timeout=240)
    assert first.exitcode == 0
    duration = time.monotonic() - started
    for _ in range(kills):
        proc = ctx.Process(target=_register_one, args=(str(workspace), job))
        proc.start()
        time.sleep(rng.uniform(0.0, 1.0) * duration)
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(timeout=60)
        client = Client(workspace)
        for model in client.models.list("k", archived=True):
            assert _complete(client, "k", model.version), model.ref
    # After the kills, registering still works (through the CLI) and numbers keep going.
    assert _register_cli("--job", job, "--name", "k").wait(timeout=240) == 0
    client = Client(workspace)
    listed = client.models.list("k", archived=True)
    assert len({m.version for m in listed}) == len(listed)
    # Versions a kill left out of MLflow were added by the next register, once each.
    assert all(m.mlflow_version for m in listed)
    import mlflow

    in_mlflow = mlflow.MlflowClient(tracking_uri=client.models.ws.mlflow_connect_uri)
    tags = [v.tags["chattune.version"] for v in in_mlflow.search_model_versions("name='k'")]
    assert sorted(tags) == sorted(m.version for m in listed)
    leftovers = [p.name for p in (workspace / "models" / "k").iterdir() if p.name.startswith(".st")]
    assert leftovers == []  # staging folders of killed registers were cleared


def test_killed_registers_leave_no_broken_version(workspace: Path, completed_job: str) -> None:
    _kill_at_random_moments(workspace, completed_job, kills=3, seed=1)


@pytest.mark.slow
def test_twenty_killed_registers_leave_no_broken_version(
    workspace: Path, completed_job: str
) -> None:
    _kill_at_random_moments(workspace, completed_job, kills=20, seed=20)
