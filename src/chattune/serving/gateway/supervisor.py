"""The gateway's control loop: make running workers match the store, probe them, report.

Each tick (:meth:`Supervisor.reconcile`) reads the endpoint's records, starts workers for new
deployments (``instance_count`` each), stops those of deleted ones, probes every worker (the
rules are :mod:`~chattune.serving.gateway.probes`) and writes the observed status back.

A deployment whose stored settings change (``deployments update``) rolls: a full set of
workers starts with the new settings beside the serving ones; once every new one is ready the
routes switch to them, and each old worker is stopped when its last request has finished (or
its request timeout has passed). No request is refused or cut on the way. If the new workers
fail, the old ones keep serving and the record gets its previous settings back, with the
error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx

from chattune.serving import procs
from chattune.serving.gateway import probes
from chattune.serving.gateway.probes import Action, Seen, Verdict
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.gateway.workers import WORKER_HOST, Deployment, Instance, kill, launch
from chattune.serving.settings import DeploymentSettings
from chattune.store import workspace_store
from chattune.store.endpoints import DELETING, DeploymentRecord, EndpointRecord
from chattune.workspace import Workspace, rotate_log

log = logging.getLogger("chattune.serving.supervisor")

GATEWAY_MARGIN_S = 10.0
"""Seconds the gateway waits on a worker beyond its ``request_timeout_ms``."""


LOG_CHECK_S = 10.0
"""How often a gateway checks its logs' sizes (``Workspace.log_rotation``)."""


class Supervisor:
    """Owns the worker processes of one endpoint (runs inside the gateway's event loop)."""

    def __init__(self, ws: Workspace, endpoint: str, node: str | None = None) -> None:
        self.ws = ws
        self.store = workspace_store(ws).endpoints
        self.endpoint = endpoint
        self.host = WORKER_HOST  # workers are on loopback whatever the gateway listens on
        self.node = node
        """None for the endpoint's own gateway; a name for an extra gateway (another node),
        which runs workers of its own and reads the shared state but writes none of it."""
        self.deployments: dict[str, Deployment] = {}
        self.table = RoutingTable()
        self.gone = False
        """True once the endpoint is deleted or marked deleting: the gateway should exit."""
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient()
        self._written: dict[str, tuple[str, list[dict[str, object]], str | None]] = {}
        self._logs_checked = -LOG_CHECK_S
        self.rolling: dict[str, Deployment] = {}
        """The workers a deployment is rolling onto (started, not yet routed to)."""
        self.draining: list[tuple[Instance, float]] = []
        """Old workers out of the routes, each stopped once idle or past its deadline."""
        self.update_errors: dict[str, str] = {}

    async def run(self, tick: float = probes.STARTUP_POLL) -> None:
        """Reconcile until the endpoint goes (a crash in one tick is logged, never fatal)."""
        while not self.gone:
            try:
                await self.reconcile()
                self.rotate_logs()
            except Exception:
                log.exception("reconcile failed; retrying")
            await asyncio.sleep(tick)

    def rotate_logs(self, every_s: float = LOG_CHECK_S) -> list[Path]:
        """Rotate this gateway's log and its workers' logs past the workspace's size limit
        (checked at most every ``every_s``); the logs rotated."""
        now = time.monotonic()
        if now - self._logs_checked < every_s:
            return []
        self._logs_checked = now
        max_bytes, keep = self.ws.log_rotation
        folder = self.ws.endpoint_dir(self.endpoint)
        suffix = f".{self.node}.log" if self.node else ".log"
        mine = [p for p in folder.glob(f"*{suffix}") if self.node or p.name.count(".") == 1]
        return [p for p in mine if rotate_log(p, max_bytes, keep)]

    async def reconcile(self) -> None:
        """One tick: start and stop workers to match the store, probe, report, reroute."""
        async with self._lock:
            endpoint = self.store.get(self.endpoint)
            if endpoint is None or endpoint.status == DELETING:
                self.gone = True
                return
            records = self.store.deployments(self.endpoint)
            wanted = {r.name: r for r in records if r.status != DELETING}
            for name in [n for n in self.deployments if n not in wanted]:
                await self._stop(self.deployments.pop(name))
                if name in self.rolling:
                    await self._stop(self.rolling.pop(name))
                self._written.pop(name, None)
            if self.node is None:
                self.store.purge_deleted_deployments(self.endpoint)  # their workers stopped
            for name, record in wanted.items():
                if name not in self.deployments and record.status != "failed":
                    self.deployments[name] = self._start(record)
                else:
                    await self._roll(name, DeploymentSettings.parse(record.settings))
            await self._drain()
            every = [*self.deployments.values(), *self.rolling.values()]
            await asyncio.gather(*(self._probe(d, i) for d in every for i in list(d.instances)))
            self._switch()
            self._report()
            self.table.replace(self._routes(endpoint))

    async def shutdown(self) -> None:
        """Stop every worker (the gateway is exiting)."""
        async with self._lock:
            every = [*self.deployments.values(), *self.rolling.values()]
            await asyncio.gather(*(self._stop(d) for d in every))
            await asyncio.gather(*(kill(i) for i, _ in self.draining))
            self.deployments.clear()
            self.rolling.clear()
            self.draining.clear()
        await self._http.aclose()

    # --- workers ------------------------------------------------------------------------

    def _start(self, record: DeploymentRecord) -> Deployment:
        settings = DeploymentSettings.parse(record.settings)
        return self._launch_all(Deployment(record.name, record.model, record.model_path, settings))

    def _launch_all(self, deployment: Deployment) -> Deployment:
        for index in range(deployment.settings.instance_count):
            deployment.instances.append(self._launch(deployment, index))
        return deployment

    def _launch(self, deployment: Deployment, index: int) -> Instance:
        return launch(deployment, index, self._log_path(deployment))

    # --- rolling updates ----------------------------------------------------------------

    async def _roll(self, name: str, wanted: DeploymentSettings) -> None:
        """Start workers with ``wanted`` settings when they differ from the serving ones."""
        running, rolling = self.deployments.get(name), self.rolling.get(name)
        if running is None or running.error:
            return
        if rolling is not None and rolling.settings != wanted:  # changed again, or reverted
            await self._stop(self.rolling.pop(name))
        if wanted == running.settings or name in self.rolling:
            return
        log.info("rolling %s onto new settings: %s", name, wanted.model_dump_json())
        self.update_errors.pop(name, None)
        fresh = Deployment(name, running.model, running.model_path, wanted)
        self.rolling[name] = self._launch_all(fresh)

    def _switch(self) -> None:
        """Route to a rolled deployment once all its workers are ready; drain the old ones.
        Give up on one whose workers failed (the old ones keep serving)."""
        for name, fresh in list(self.rolling.items()):
            old = self.deployments[name]
            if fresh.error:
                del self.rolling[name]
                why = f"update failed, still serving the previous settings: {fresh.error}"
                self.update_errors[name] = why
                log.error("deployment %s: %s", name, why)
                if self.node is None:
                    self.store.set_deployment_settings(
                        self.endpoint, name, old.settings.model_dump(), error=why
                    )
                continue
            if fresh.instances and all(i.probe.ready for i in fresh.instances):
                fresh.ever_ready = True
                self.deployments[name] = self.rolling.pop(name)
                grace = old.settings.request_timeout_ms / 1000 + GATEWAY_MARGIN_S
                self.draining += [(i, time.monotonic() + grace) for i in old.instances]
                log.info("deployment %s now serves with its new settings", name)

    async def _drain(self) -> None:
        """Stop the old workers that have no request in flight (or are past their grace).

        Runs a tick after the routes left them out, so no new request can pick them."""
        now, stopping = time.monotonic(), []
        for instance, deadline in self.draining:
            if self.table.inflight[f"http://{self.host}:{instance.port}"] <= 0 or now > deadline:
                stopping.append((instance, deadline))
        self.draining = [x for x in self.draining if x not in stopping]
        await asyncio.gather(*(kill(i) for i, _ in stopping))

    async def _restart(self, deployment: Deployment, instance: Instance, why: str) -> None:
        log.warning(
            "restarting %s instance %d (pid %d): %s",
            deployment.name,
            instance.index,
            instance.proc.pid,
            why,
        )
        await kill(instance)
        fresh = self._launch(deployment, instance.index)
        fresh.restarts = instance.restarts + 1
        deployment.instances[deployment.instances.index(instance)] = fresh

    async def _stop(self, deployment: Deployment) -> None:
        await asyncio.gather(*(kill(i) for i in deployment.instances))
        log.info("stopped %s", deployment.name)

    async def _fail(self, deployment: Deployment, why: str) -> None:
        log.error("deployment %s failed: %s", deployment.name, why)
        deployment.error = why
        await self._stop(deployment)
        deployment.instances = []

    # --- probes -------------------------------------------------------------------------

    async def _probe(self, deployment: Deployment, instance: Instance) -> None:
        """Probe one worker over HTTP, let :func:`probes.decide` judge, apply its action."""
        if deployment.error:
            return
        s = deployment.settings
        now = time.monotonic()
        seen = Seen(now, exit_code=instance.proc.poll())
        if seen.exit_code is None:
            want_live, want_ready = probes.due(instance.probe, now, s.liveness_probe)
            # While loading, a short timeout: a worker still importing holds the connection
            # unanswered, and the tick (routing updates, nudges) must not wait on it.
            ready_timeout = s.readiness_probe.timeout
            if not instance.probe.loaded:
                ready_timeout = min(ready_timeout, probes.STARTUP_POLL)
            live, ready = await asyncio.gather(
                self._get(instance, "/health/live", s.liveness_probe.timeout, want_live),
                self._get(instance, "/health/ready", ready_timeout, want_ready),
            )
            seen = Seen(now, live=live, ready=ready)
        verdict = probes.decide(
            instance.probe,
            seen,
            s.liveness_probe,
            s.readiness_probe,
            ever_ready=deployment.ever_ready,
        )
        await self._apply(deployment, instance, verdict)

    async def _apply(self, deployment: Deployment, instance: Instance, verdict: Verdict) -> None:
        instance.probe = verdict.state
        if verdict.action is Action.READY:
            deployment.ever_ready = True
            log.info("%s instance %d: %s", deployment.name, instance.index, verdict.why)
        elif verdict.action is Action.UNREADY:
            log.warning("%s instance %d: %s", deployment.name, instance.index, verdict.why)
        elif verdict.action is Action.RESTART:
            await self._restart(deployment, instance, verdict.why)
        elif verdict.action is Action.FAIL:
            why = verdict.why
            if instance.proc.returncode is not None:  # the worker's log says why it exited
                why += f": {procs.last_line(self._log_path(deployment))}"
            await self._fail(deployment, why)

    async def _get(
        self, instance: Instance, path: str, timeout: float, wanted: bool
    ) -> bool | None:
        """True on a 200 answer, False on anything else, ``None`` when not ``wanted``."""
        if not wanted:
            return None
        try:
            answer = await self._http.get(
                f"http://{self.host}:{instance.port}{path}", timeout=timeout
            )
            return answer.status_code == 200
        except httpx.HTTPError:
            return False

    # --- reporting ----------------------------------------------------------------------

    def _report(self) -> None:
        if self.node is not None:  # the endpoint's own gateway reports; nodes only serve
            return
        for name, deployment in self.deployments.items():
            instances = [
                i.describe() | {"settings": d.settings.fingerprint()}
                for d in (deployment, self.rolling.get(name))
                if d is not None
                for i in d.instances
            ]
            error = deployment.error or self.update_errors.get(name)
            observed = (deployment.status, instances, error)
            if self._written.get(name) != observed:
                self.store.update_deployment(
                    self.endpoint,
                    name,
                    status=deployment.status,
                    instances=instances,
                    error=error,
                )
                self._written[name] = observed

    def _routes(self, endpoint: EndpointRecord) -> RoutingTable:
        return RoutingTable(
            traffic=endpoint.traffic,
            mirror=endpoint.mirror_traffic,
            instances={
                name: [f"http://{self.host}:{i.port}" for i in d.instances if i.probe.ready]
                for name, d in self.deployments.items()
            },
            statuses={name: d.status for name, d in self.deployments.items()},
            timeouts={
                name: d.settings.request_timeout_ms / 1000 + GATEWAY_MARGIN_S
                for name, d in self.deployments.items()
            },
            models={name: d.model for name, d in self.deployments.items()},
        )

    def note_broken(self, deployment: str, why: str) -> None:
        """Record a stream a worker broke off in the deployment's log (and the gateway's)."""
        log.warning("%s", why)
        found = self.deployments.get(deployment)
        if found is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self._log_path(found), "a") as out:  # appends: the worker writes here too
            out.write(f"{stamp} gateway WARNING: {why}\n")

    def _log_path(self, deployment: Deployment) -> Path:
        suffix = f".{self.node}" if self.node else ""
        return self.ws.endpoint_dir(self.endpoint) / f"{deployment.name}{suffix}.log"
