"""The gateway's control loop: make running workers match the database, probe them, report.

Each tick (:meth:`Supervisor.reconcile`) reads the endpoint's rows, starts workers for new
deployments (``instance_count`` each), stops those of deleted ones, probes every worker and
writes the observed status back. Probes follow Azure ML semantics:

* until first ready, readiness is polled every :data:`STARTUP_POLL` seconds, so ``ready`` is
  reported as soon as the model is loaded; ``liveness_probe.initial_delay`` only bounds
  that wait (then the deployment fails);
* once ready, liveness every ``period``: ``failure_threshold`` misses restart the worker;
  readiness every ``period``: ``failure_threshold`` misses take it out of rotation;
* a worker that exits is restarted, unless its deployment never became ready (a model that
  cannot load fails the deployment instead of crash-looping).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

from chattune.serving import procs, state
from chattune.serving.routing import RoutingTable
from chattune.serving.state import DeploymentSettings
from chattune.workspace import Workspace, dumps

log = logging.getLogger("chattune.serving.supervisor")

STARTUP_POLL = 0.25
STOP_GRACE = 5.0


@dataclass
class Instance:
    index: int
    proc: subprocess.Popen[bytes]
    port: int
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    loaded: bool = False
    live_failures: int = 0
    ready_failures: int = 0
    ready_successes: int = 0
    next_live: float = 0.0
    next_ready: float = 0.0
    restarts: int = 0

    def describe(self) -> dict[str, object]:
        state_ = "ready" if self.ready else ("unready" if self.loaded else "starting")
        return {
            "index": self.index,
            "pid": self.proc.pid,
            "port": self.port,
            "state": state_,
            "restarts": self.restarts,
        }


@dataclass
class Deployment:
    name: str
    model: str
    model_path: str
    settings: DeploymentSettings
    instances: list[Instance] = field(default_factory=list)
    ever_ready: bool = False
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        ready = sum(i.ready for i in self.instances)
        if not self.ever_ready:
            return "creating"
        if ready == len(self.instances):
            return "ready"
        return "degraded" if ready else "unhealthy"


class Supervisor:
    """Owns the worker processes of one endpoint (runs inside the gateway's event loop)."""

    def __init__(self, ws: Workspace, endpoint: str, host: str) -> None:
        self.ws = ws
        self.endpoint = endpoint
        self.host = host
        self.deployments: dict[str, Deployment] = {}
        self.table = RoutingTable()
        self.gone = False
        """True once the endpoint row is deleted or marked deleting: the gateway should exit."""
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient()
        self._written: dict[str, tuple[str, str, str | None]] = {}

    async def run(self, tick: float = STARTUP_POLL) -> None:
        """Reconcile forever (a crash in one tick is logged, never fatal)."""
        while not self.gone:
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
            await asyncio.sleep(tick)

    async def reconcile(self) -> None:
        async with self._lock:
            with self.ws.db() as conn:
                endpoint = state.endpoint_row(conn, self.endpoint)
                rows = state.deployment_rows(conn, self.endpoint)
            if endpoint is None or endpoint["status"] == state.DELETING:
                self.gone = True
                return
            wanted = {r["name"]: r for r in rows if r["status"] != state.DELETING}
            for name in [n for n in self.deployments if n not in wanted]:
                await self._stop(self.deployments.pop(name))
                self._written.pop(name, None)
            with self.ws.db() as conn:  # their workers are stopped: the deletion is done
                conn.execute(
                    "DELETE FROM deployments WHERE endpoint = ? AND status = ?",
                    (self.endpoint, state.DELETING),
                )
            for name, row in wanted.items():
                if name not in self.deployments and row["status"] != "failed":
                    self.deployments[name] = self._start(row)
            await asyncio.gather(
                *(self._probe(d, i) for d in self.deployments.values() for i in list(d.instances))
            )
            self._report()
            self.table.replace(self._routes(endpoint))

    async def shutdown(self) -> None:
        """Stop every worker (the gateway is exiting)."""
        async with self._lock:
            await asyncio.gather(*(self._stop(d) for d in self.deployments.values()))
            self.deployments.clear()
        await self._http.aclose()

    # --- workers ------------------------------------------------------------------------

    def _start(self, row: sqlite3.Row) -> Deployment:
        deployment = Deployment(
            row["name"],
            row["model"],
            row["model_path"],
            DeploymentSettings.from_json(row["settings"]),
        )
        for index in range(deployment.settings.instance_count):
            deployment.instances.append(self._launch(deployment, index))
        return deployment

    def _launch(self, deployment: Deployment, index: int, restarts: int = 0) -> Instance:
        s = deployment.settings
        sock = procs.listen_socket(self.host)
        port = sock.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "chattune.serving.worker",
            "--model-path",
            deployment.model_path,
            "--model-name",
            deployment.model,
            "--deployment",
            deployment.name,
            "--fd",
            str(sock.fileno()),
            "--request-timeout-ms",
            str(s.request_timeout_ms),
            "--max-concurrent-requests",
            str(s.max_concurrent_requests_per_instance),
            "--max-queue-wait-ms",
            str(s.max_queue_wait_ms),
            "--max-batch-size",
            str(s.max_batch_size),
            "--exit-with-parent",
        ]
        log_path = self.ws.endpoint_dir(self.endpoint) / f"{deployment.name}.log"
        try:
            proc = procs.spawn(cmd, log_path, pass_fds=[sock.fileno()])
        finally:
            sock.close()  # the worker holds its own copy
        log.info("started %s instance %d: pid %d port %d", deployment.name, index, proc.pid, port)
        return Instance(index, proc, port, restarts=restarts)

    async def _restart(self, deployment: Deployment, instance: Instance, why: str) -> None:
        log.warning(
            "restarting %s instance %d (pid %d): %s",
            deployment.name,
            instance.index,
            instance.proc.pid,
            why,
        )
        await self._kill(instance)
        fresh = self._launch(deployment, instance.index, instance.restarts + 1)
        deployment.instances[deployment.instances.index(instance)] = fresh

    async def _stop(self, deployment: Deployment) -> None:
        await asyncio.gather(*(self._kill(i) for i in deployment.instances))
        log.info("stopped %s", deployment.name)

    async def _kill(self, instance: Instance) -> None:
        proc = instance.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)

    # --- probes -------------------------------------------------------------------------

    async def _probe(self, deployment: Deployment, instance: Instance) -> None:
        if deployment.error:
            return
        now = time.monotonic()
        live, ready = deployment.settings.liveness_probe, deployment.settings.readiness_probe
        code = instance.proc.poll()
        if code is not None:
            instance.ready = False
            if deployment.ever_ready:
                await self._restart(deployment, instance, f"exited with code {code}")
            else:
                await self._fail(
                    deployment,
                    f"worker exited with code {code} before it was "
                    f"ready: {self._last_log_line(deployment)}",
                )
            return
        if not instance.loaded:
            if now - instance.started > live.initial_delay:
                why = f"not ready within liveness initial_delay={live.initial_delay:g}s"
                if deployment.ever_ready:
                    await self._restart(deployment, instance, why)
                else:
                    await self._fail(deployment, why)
                return
            # A short timeout: a worker still importing holds the connection unanswered, and
            # the tick (routing updates, nudges) must not wait on it.
            if await self._get(instance, "/health/ready", min(ready.timeout, STARTUP_POLL)):
                instance.loaded = instance.ready = deployment.ever_ready = True
                instance.next_live = now + live.period
                instance.next_ready = now + ready.period
                log.info(
                    "%s instance %d ready after %.1fs",
                    deployment.name,
                    instance.index,
                    now - instance.started,
                )
            return
        if now >= instance.next_live:
            instance.next_live = now + live.period
            if await self._get(instance, "/health/live", live.timeout):
                instance.live_failures = 0
            else:
                instance.live_failures += 1
                if instance.live_failures >= live.failure_threshold:
                    await self._restart(
                        deployment,
                        instance,
                        f"liveness probe failed {instance.live_failures} times",
                    )
                    return
        if now >= instance.next_ready:
            instance.next_ready = now + ready.period
            if await self._get(instance, "/health/ready", ready.timeout):
                instance.ready_failures = 0
                instance.ready_successes += 1
                if instance.ready_successes >= ready.success_threshold:
                    instance.ready = True
            else:
                instance.ready_successes = 0
                instance.ready_failures += 1
                if instance.ready_failures >= ready.failure_threshold:
                    instance.ready = False

    async def _get(self, instance: Instance, path: str, timeout: float) -> bool:
        try:
            answer = await self._http.get(
                f"http://{self.host}:{instance.port}{path}", timeout=timeout
            )
            return answer.status_code == 200
        except httpx.HTTPError:
            return False

    async def _fail(self, deployment: Deployment, why: str) -> None:
        log.error("deployment %s failed: %s", deployment.name, why)
        deployment.error = why
        await self._stop(deployment)
        deployment.instances = []

    def _last_log_line(self, deployment: Deployment) -> str:
        path = self.ws.endpoint_dir(self.endpoint) / f"{deployment.name}.log"
        lines = [x for x in procs.tail(path, 40).splitlines() if x.strip()]
        errors = [x for x in lines if "Error" in x or "error" in x]
        return (errors or lines or ["(no log output)"])[-1].strip()[:300]

    # --- reporting ----------------------------------------------------------------------

    def _report(self) -> None:
        for name, deployment in self.deployments.items():
            instances = dumps([i.describe() for i in deployment.instances])
            observed = (deployment.status, instances, deployment.error)
            if self._written.get(name) != observed:
                state.set_deployment(
                    self.ws,
                    self.endpoint,
                    name,
                    status=observed[0],
                    instances=instances,
                    error=deployment.error,
                )
                self._written[name] = observed

    def _routes(self, endpoint: sqlite3.Row) -> RoutingTable:
        return RoutingTable(
            traffic=json.loads(endpoint["traffic"]),
            mirror=json.loads(endpoint["mirror_traffic"]),
            instances={
                name: [f"http://{self.host}:{i.port}" for i in d.instances if i.ready]
                for name, d in self.deployments.items()
            },
            statuses={name: d.status for name, d in self.deployments.items()},
            timeouts={
                name: d.settings.request_timeout_ms / 1000 + 10
                for name, d in self.deployments.items()
            },
        )
