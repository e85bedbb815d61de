"""A throwaway local Ray head for tests: free ports, private temp folder, reliable stop.

`start_ray_head(tmp_path)` runs `ray start --head --block` (Ray from this interpreter's
environment) as a child in its own session, waits until the Jobs API answers and the node
is alive, and returns a `RayHead` whose `address` is the job server URL
(`http://127.0.0.1:PORT`). `stop()` (also run at interpreter exit) ends only this head.

Ports: every port Ray would otherwise take at a fixed default (GCS 6379, dashboard 8265,
dashboard agent 52365, dashboard metrics 44227, autoscaler metrics 44217, client server
10001) is set to a free one; the rest (raylet, object manager, agents,
workers) are left to the OS (port 0), so parallel heads and other tests do not clash.

Footprint: 2 CPUs, an 80 MB object store, no log monitor or autoscaler monitor, no usage
stats; about 0.8 GiB (PSS) when idle.

Stopping: `ray stop` would kill every Ray process of the machine, so it is not used.
SIGTERM to the `ray start --block` process makes Ray tear down what it started (with no
30 s node drain: RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0). Job entrypoints run in their own
sessions, so `stop()` also tracks every process that carries this head's marker in its
environment (all Ray processes and jobs inherit it) or its temp folder on its command line,
SIGKILLs whatever is left after the grace period and checks that nothing survived.
The temp folder is short (`/tmp/rayXXXX`): Ray's Unix socket paths must fit 107 bytes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MARKER_VARIABLE = "CHATTUNE_TEST_RAY_HEAD"
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is 75 MiB
# Variables that would point `ray start` (or Ray's clients) at another cluster.
_FOREIGN_VARIABLES = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_NAMESPACE")


class RayNotInstalled(RuntimeError):
    """The `ray` command is not in this interpreter's environment."""


@dataclass(eq=False)
class RayHead:
    """A running local Ray head; `address` is the Jobs API (dashboard) URL."""

    address: str
    gcs_address: str
    temp_dir: Path  # Ray's --temp-dir, private to this head, removed by stop()
    log_path: Path  # the output of `ray start`
    cwd: Path  # the head's current folder, hence the one jobs start in
    process: subprocess.Popen[bytes] = field(repr=False)
    marker: str = field(repr=False)
    started_in_s: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    def processes(self) -> list[psutil.Process]:
        """The live processes of this head: its tree, plus strays found by marker/temp dir."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                found[proc.pid] = proc
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if proc.pid in found or proc.pid == os.getpid():
                continue
            try:
                cmdline = " ".join(proc.info["cmdline"] or ())
                if str(self.temp_dir) in cmdline or (
                    proc.environ().get(MARKER_VARIABLE) == self.marker
                ):
                    found[proc.pid] = proc
            except psutil.Error:
                continue
        return [p for p in found.values() if _alive(p)]

    def memory_mib(self) -> float:
        """Proportional set size (PSS) of all this head's processes, in MiB."""
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += getattr(proc.memory_full_info(), "pss", 0)
        return total / 2**20

    def stop(self, timeout: float = 20) -> None:
        """Stop this head and everything it started; raise if a process survives."""
        if self._stopped:
            return
        atexit.unregister(self.stop)
        procs = self.processes()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        _gone, alive = psutil.wait_procs(procs, timeout=2)
        for _ in range(3):  # SIGKILL stragglers, and whatever they spawned meanwhile
            alive = [p for p in {*alive, *self.processes()} if _alive(p)]
            if not alive:
                break
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            _gone, alive = psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self._stopped = True
        left = [p for p in {*alive, *self.processes()} if _alive(p)]
        if left:
            raise RuntimeError(f"Ray head processes still running after stop: {left}")
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayHead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_ray_head(tmp_path: Path, *, num_cpus: int = 2, timeout: float = 120) -> RayHead:
    """Start a fresh local Ray head (Jobs API included) and wait until it takes jobs.

    `tmp_path` holds the `ray start` log and is the head's (and so the jobs') current
    folder; Ray's own files go to a short private folder in /tmp.
    """
    ray_bin = Path(sys.executable).with_name("ray")
    if not os.access(ray_bin, os.X_OK):
        raise RayNotInstalled(f"{ray_bin} not found: pip install 'chattune[ray]'")
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    marker = secrets.token_hex(8)
    gcs, dashboard, agent, client, dash_metrics, autoscaler_metrics = _free_ports(6)
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_VARIABLES}
    env.update(
        {
            MARKER_VARIABLE: marker,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            "DASHBOARD_METRIC_PORT": str(dash_metrics),
            "AUTOSCALER_METRIC_PORT": str(autoscaler_metrics),
            "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
        }
    )
    command = [
        str(ray_bin), "start", "--head", "--block", "--disable-usage-stats",
        "--temp-dir", str(temp_dir),
        "--num-cpus", str(num_cpus), "--num-gpus", "0",
        "--object-store-memory", str(OBJECT_STORE_BYTES),
        "--port", str(gcs),
        "--include-dashboard", "true",
        "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard),
        "--dashboard-agent-listen-port", str(agent),
        "--ray-client-server-port", str(client),  # cannot be turned off
        "--min-worker-port", "0", "--max-worker-port", "0",  # OS-chosen worker ports
        "--include-log-monitor", "false",
        "--no-monitor",
    ]  # fmt: skip
    log_path = tmp_path / "ray-head.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    head = RayHead(
        address=f"http://127.0.0.1:{dashboard}",
        gcs_address=f"127.0.0.1:{gcs}",
        temp_dir=temp_dir,
        log_path=log_path,
        cwd=tmp_path,
        process=process,
        marker=marker,
    )
    atexit.register(head.stop)
    try:
        _wait_ready(head, deadline=started + timeout)
    except BaseException:
        head.stop()
        raise
    head.started_in_s = time.monotonic() - started
    return head


def _wait_ready(head: RayHead, deadline: float) -> None:
    """Until the job server answers and reports an alive node (raylet and agents up)."""
    while True:
        if head.process.poll() is not None:
            raise RuntimeError(
                f"`ray start` exited with {head.process.returncode}: {_tail(head.log_path)}"
            )
        if _get(f"{head.address}/api/version") and '"ALIVE"' in _get(
            f"{head.address}/api/v0/nodes?limit=10"
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray head not ready in time: {_tail(head.log_path)}")
        time.sleep(0.5)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.read().decode()
    except (OSError, ValueError):
        return ""


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 and 0.0.0.0 a moment ago."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("0.0.0.0", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
