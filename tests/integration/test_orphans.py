"""No process outlives its parent: for every way a worker (or a training rank) is started,
``kill -9`` of whatever started it takes the worker and everything it started down within
:data:`WITHIN` seconds, even when the parent dies while the worker is still importing.

The vLLM engine's server is a stand-in (vLLM is not installed in the default suite): a
fake engine environment whose ``bin/python`` runs ``sleep`` with a ``sleep`` beside it in its
process group, started by the real :class:`VllmEngine` code. Training ranks are a stand-in
module under a real torchrun, started by the real ``distributed._supervise``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from chattune.serving import procs, vllm_env
from chattune.serving.endpoints import EndpointsAPI
from chattune.train import distributed
from chattune.workspace import Workspace

WITHIN = 5.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def api(workspace: Path, tiny_model_dir: Path) -> Iterator[EndpointsAPI]:
    endpoints = EndpointsAPI(Workspace.init(workspace), resolve_model=lambda r: (r, tiny_model_dir))
    yield endpoints
    for info in endpoints.list():  # never leave processes behind, even on failure
        endpoints.delete(info.name)


def _until(check: Callable[[], object], seconds: float = 60.0) -> object:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def _tree(pid: int) -> list[int]:
    """``pid``'s descendants now."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _live(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _worker(api: EndpointsAPI, endpoint: str, *, live: bool) -> dict[str, object]:
    """The deployment's one instance; with ``live``, once its HTTP server answers."""
    [instance] = _until(lambda: api.get_deployment(endpoint, "demo").instances)  # type: ignore[misc]
    if live:
        _until(lambda: _live(instance["port"]))
    return instance


# --- start paths: each returns (the parent to kill, the processes that must follow) ------


def gateway(api: EndpointsAPI, tmp_path: Path, *, early: bool = False) -> tuple[int, list[int]]:
    info = api.create("orphan-gw")
    api.create_deployment("orphan-gw", "demo", "tiny:1", wait=False)
    instance = _worker(api, "orphan-gw", live=not early)  # early: the worker still imports
    assert info.pid
    return info.pid, [int(instance["pid"]), *_tree(int(instance["pid"]))]  # type: ignore[arg-type]


def node(api: EndpointsAPI, tmp_path: Path) -> tuple[int, list[int]]:
    api.create("orphan-node")
    api.create_deployment("orphan-node", "demo", "tiny:1", wait=False)
    api.add_node("orphan-node", "node-b")
    [node_pid] = [
        p.pid for p in psutil.process_iter(["cmdline"]) if "node-b" in " ".join(p.cmdline())
    ]
    workers = _until(lambda: _tree(node_pid))
    return node_pid, list(workers)  # type: ignore[arg-type]


LAUNCH_FROM_A_THREAD = """
import sys, threading, time
from pathlib import Path
from chattune.serving.gateway.workers import Deployment, launch
from chattune.serving.settings import DeploymentSettings

deployment = Deployment("demo", "tiny:1", sys.argv[1], DeploymentSettings())
started = {}
thread = threading.Thread(target=lambda: started.update(i=launch(deployment, 0, Path(sys.argv[2]))))
thread.start()
thread.join()  # the thread that started the worker is gone; the process lives on
print(started["i"].proc.pid, started["i"].port, flush=True)
time.sleep(600)
"""


def in_process(api: EndpointsAPI, tmp_path: Path) -> tuple[int, list[int]]:
    """A worker launched as an in-process supervisor would (the SDK or a test embedding the
    gateway code), from a thread that ends before the process does."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH_FROM_A_THREAD,
            str(api.resolve_model("x")[1]),
            str(tmp_path / "worker.log"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pid, port = map(int, parent.stdout.readline().split())
    _until(lambda: _live(port))  # the thread's end did not take the worker down
    return parent.pid, [pid]


def fake_vllm(root: Path) -> None:
    """An engine environment whose server is ``sleep`` (and one more in its group)."""
    venv = root / "engines" / "vllm"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\nsleep 600 &\nexec sleep 601\n")
    python.chmod(0o755)
    (venv / vllm_env.MARKER).write_text(vllm_env.fingerprint() + "\n")


def _vllm_worker(
    api: EndpointsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int, list[int]]:
    """(gateway, worker, the worker's server and its group) of a vLLM-engine deployment."""
    fake_vllm(tmp_path / "cache")
    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path / "cache"))
    info = api.create("orphan-vllm")
    api.create_deployment("orphan-vllm", "demo", "tiny:1", wait=False, engine="vllm")
    worker = int(_worker(api, "orphan-vllm", live=False)["pid"])  # type: ignore[arg-type]
    server = _until(lambda: len(_tree(worker)) == 2 and _tree(worker))
    assert info.pid
    return info.pid, worker, list(server)  # type: ignore[arg-type]


def vllm_gateway(
    api: EndpointsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[int]]:
    gateway_pid, worker, server = _vllm_worker(api, tmp_path, monkeypatch)
    return gateway_pid, [worker, *server]


def vllm_worker(
    api: EndpointsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[int]]:
    """The worker itself killed: the kernel stops its server (the group leader; what vLLM
    starts itself, vLLM stops when its server gets SIGTERM; the stand-in's ``sleep`` does
    not, and the test kills it)."""
    _, worker, server = _vllm_worker(api, tmp_path, monkeypatch)
    leader = [p for p in server if os.getpgid(p) == p]
    return worker, leader + [-p for p in server if p not in leader]


STARTS = {
    "gateway": gateway,
    "gateway-while-worker-imports": lambda api, tmp: gateway(api, tmp, early=True),
    "node-gateway": node,
    "in-process-from-a-thread": in_process,
}


@pytest.mark.parametrize("start", list(STARTS))
def test_kill_9_of_the_parent_takes_the_worker_down(
    api: EndpointsAPI, tmp_path: Path, start: str
) -> None:
    parent, followers = STARTS[start](api, tmp_path)
    _kill_and_check(parent, followers)


@pytest.mark.parametrize("start", [vllm_gateway, vllm_worker], ids=["gateway", "worker"])
def test_kill_9_takes_the_vllm_server_down(
    api: EndpointsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: Callable
) -> None:
    parent, followers = start(api, tmp_path, monkeypatch)
    try:
        _kill_and_check(parent, [p for p in followers if p > 0])
    finally:
        _kill_all([abs(p) for p in followers])


SUPERVISE_TORCHRUN = """
import logging, sys
from pathlib import Path
from chattune.train import distributed
from chattune.train.results import Hooks

cmd = [sys.executable, "-m", distributed.TORCHRUN, "--standalone", "--nproc-per-node=2",
       "-m", "tests.standin_rank"]
distributed._supervise(cmd, Path(sys.argv[1]), Hooks(logging.getLogger("job")))
"""


def _job_with_ranks(tmp_path: Path) -> tuple[int, int, list[int]]:
    """(job process, torchrun, ranks): the job's training stage as ``jobs.worker`` runs it."""
    job = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE_TORCHRUN, str(tmp_path / "events.jsonl")], cwd=REPO
    )

    def ranks() -> list[int]:
        found = [psutil.Process(p) for p in _tree(job.pid)]
        return [p.pid for p in found if distributed.TORCHRUN not in p.cmdline()]

    found = _until(lambda: len(ranks()) == 2 and ranks(), seconds=90)
    [torchrun] = [p for p in _tree(job.pid) if p not in found]  # type: ignore[operator]
    return job.pid, torchrun, list(found)  # type: ignore[arg-type]


def job_process(tmp_path: Path) -> tuple[int, list[int]]:
    job, torchrun, ranks = _job_with_ranks(tmp_path)
    return job, [torchrun, *ranks]


def torchrun(tmp_path: Path) -> tuple[int, list[int]]:
    _, torchrun_pid, ranks = _job_with_ranks(tmp_path)
    return torchrun_pid, ranks


@pytest.mark.parametrize("start", [job_process, torchrun], ids=["job-process", "torchrun"])
def test_kill_9_takes_the_training_ranks_down(tmp_path: Path, start: Callable) -> None:
    """Jobs outlive the terminal on purpose; torchrun and its ranks never outlive the job."""
    parent, followers = start(tmp_path)
    try:
        _kill_and_check(parent, followers)
    finally:
        _kill_all([parent, *followers])


POOL = """
import multiprocessing, sys, time
from chattune.train import preprocess

pool = multiprocessing.get_context("spawn").Pool(2, preprocess._init_worker, (sys.argv[1],))
pool.apply(time.sleep, (0,))  # the workers are up (and their initializer ran)
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
time.sleep(600)
"""


def test_kill_9_of_a_job_takes_its_preprocessing_workers_down(tiny_model_dir: Path) -> None:
    """The preprocess stage's pool (spawned workers, as ``preprocess.prepare`` makes it)."""
    job = subprocess.Popen(
        [sys.executable, "-c", POOL, str(tiny_model_dir)], stdout=subprocess.PIPE, text=True
    )
    assert job.stdout is not None
    workers = [int(pid) for pid in job.stdout.readline().split()]
    assert len(workers) == 2
    try:
        _kill_and_check(job.pid, workers)
    finally:
        _kill_all(workers)


def _kill_all(pids: list[int]) -> None:
    """Whatever of ``pids`` a failed test left running."""
    for pid in pids:
        if procs.alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _kill_and_check(parent: int, followers: list[int]) -> None:
    assert followers and all(procs.alive(p) for p in followers)
    os.kill(parent, signal.SIGKILL)
    killed = time.monotonic()
    gone = procs.wait_gone(followers, timeout=WITHIN)
    print(f"{len(followers)} process(es) gone {time.monotonic() - killed:.2f}s after kill -9")
    left = [(p, " ".join(psutil.Process(p).cmdline())) for p in followers if procs.alive(p)]
    assert gone, f"still alive {time.monotonic() - killed:.1f}s after kill -9 of {parent}: {left}"
