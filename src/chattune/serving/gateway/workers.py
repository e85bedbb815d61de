"""The worker processes a gateway owns: what it knows of each, and how it starts and stops one.

A worker gets its deployment's settings whole (``--settings-json``) and an inherited
listening socket (``--fd``), so its port is bound before it starts and no other process can
take it. Workers listen on loopback only (:data:`WORKER_HOST`), whatever address the gateway
listens on, and answer only requests carrying their gateway's secret.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chattune.serving import procs
from chattune.serving.gateway.probes import ProbeState
from chattune.serving.settings import DeploymentSettings

log = logging.getLogger("chattune.serving.supervisor")

WORKER_MODULE = "chattune.serving.worker"
STOP_GRACE = 5.0
WORKER_HOST = "127.0.0.1"
"""Where every worker listens: a gateway on ``0.0.0.0`` must not expose its workers."""


@dataclass
class Instance:
    """One worker process of a deployment."""

    index: int
    proc: subprocess.Popen[bytes]
    port: int
    restarts: int = 0
    probe: ProbeState = field(default_factory=lambda: ProbeState(started=time.monotonic()))

    def describe(self) -> dict[str, object]:
        """The instance as the store keeps it (``deployments.instances``)."""
        return {
            "index": self.index,
            "pid": self.proc.pid,
            "port": self.port,
            "state": self.probe.label,
            "restarts": self.restarts,
        }


@dataclass
class Deployment:
    """A deployment as the gateway runs it."""

    name: str
    model: str
    model_path: str
    settings: DeploymentSettings
    instances: list[Instance] = field(default_factory=list)
    ever_ready: bool = False
    error: str | None = None

    @property
    def status(self) -> str:
        """``creating``, ``ready``, ``degraded`` (some ready), ``unhealthy`` or ``failed``."""
        if self.error:
            return "failed"
        ready = sum(i.probe.ready for i in self.instances)
        if not self.ever_ready:
            return "creating"
        if ready == len(self.instances):
            return "ready"
        return "degraded" if ready else "unhealthy"


def launch(deployment: Deployment, index: int, log_path: Path) -> Instance:
    """Start worker ``index`` of ``deployment`` on a fresh loopback port."""
    sock = procs.listen_socket(WORKER_HOST)
    port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        WORKER_MODULE,
        "--model-path",
        deployment.model_path,
        "--model-name",
        deployment.model,
        "--deployment",
        deployment.name,
        "--fd",
        str(sock.fileno()),
        "--settings-json",
        deployment.settings.model_dump_json(),
        "--exit-with-parent",
    ]
    try:
        proc = procs.spawn(cmd, log_path, pass_fds=[sock.fileno()], lifeline=True)
    finally:
        sock.close()  # the worker holds its own copy
    log.info("started %s instance %d: pid %d port %d", deployment.name, index, proc.pid, port)
    return Instance(index, proc, port)


async def kill(instance: Instance) -> None:
    """SIGTERM the worker, SIGKILL it after :data:`STOP_GRACE` seconds."""
    proc = instance.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
