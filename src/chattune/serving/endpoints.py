"""The endpoints SDK: ``client.endpoints``. The CLI is this object plus printing.

The store holds the desired state (endpoint, deployments, traffic); each endpoint's gateway
process reconciles its workers to it and writes the observed status back. Calls here write
records, nudge the gateway, and (unless ``wait=False``) wait for the observed state.

>>> from chattune import Client
>>> eps = Client().endpoints
>>> eps.create("my-ep")
>>> eps.create_deployment("my-ep", "demo", model="tiny-random-phi3:1")
>>> eps.update("my-ep", traffic={"demo": 100})
>>> eps.invoke("my-ep", {"input_data": {"input_string": [{"role": "user", "content": "Hi"}]}})
{'output': '...'}
>>> eps.delete("my-ep")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from chattune.errors import ConflictError, NotFoundError, RuntimeFailure, ValidationError
from chattune.serving import keys as keyfile
from chattune.serving import procs
from chattune.serving.deployments import DeploymentsMixin
from chattune.serving.http import RECONCILE_PATH
from chattune.serving.info import EndpointInfo
from chattune.serving.invoke import post_request, read_request
from chattune.serving.traffic import check_name, traffic_problems
from chattune.store import workspace_store
from chattune.workspace import Workspace

if TYPE_CHECKING:
    from chattune.store.endpoints import EndpointRecord

AUTH_MODES = ("key",)
GATEWAY_MODULE = "chattune.serving.gateway"
"""Run as ``python -m``; also the marker that tells our gateway from a recycled pid."""
SERVING_MARKER = "chattune.serving."
POLL = 0.1


class EndpointsAPI(DeploymentsMixin):
    """Create, inspect, call and delete online endpoints and their deployments."""

    def __init__(
        self, workspace: Workspace, resolve_model: Callable[[str], tuple[str, Path]]
    ) -> None:
        self.ws = workspace
        self.store = workspace_store(workspace).endpoints
        self.resolve_model = resolve_model
        self._gateways: dict[str, subprocess.Popen[bytes]] = {}

    # --- endpoints ----------------------------------------------------------------------

    def create(
        self,
        name: str,
        auth_mode: str = "key",
        *,
        description: str = "",
        wait: bool = True,
        timeout: float = 60.0,
    ) -> EndpointInfo:
        """Create endpoint ``name`` (``description``: what it is for) and start its gateway;
        wait until it listens.

        >>> client.endpoints.create("my-ep").scoring_uri
        'http://127.0.0.1:41234/score'
        """
        check_name("endpoint", name)
        if auth_mode not in AUTH_MODES:
            raise ValidationError(
                f"auth_mode {auth_mode!r} is not supported", f"use one of: {', '.join(AUTH_MODES)}"
            )
        host = str(self.ws.config.get("host") or "127.0.0.1")
        self.store.insert(name, host, auth_mode, description)
        folder = self.ws.endpoint_dir(name)
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an endpoint of that name
        folder.mkdir(parents=True)
        keyfile.write_keys(folder / "keys.json", {k: keyfile.new_key() for k in keyfile.KEY_TYPES})
        proc = self._spawn_gateway(name)
        if wait:
            self._wait_listening(name, proc, timeout)
        return self.get(name)

    def start(self, name: str, *, wait: bool = True, timeout: float = 60.0) -> EndpointInfo:
        """Bring back the gateway of an endpoint whose gateway died (``dead``): the same port
        when it is still free, the same keys, deployments and traffic. Waits (unless
        ``wait=False``) until the gateway listens and its deployments are ready again.

        >>> client.endpoints.start("my-ep").status
        'running'
        """
        proc = self._restart_gateway(name)
        if wait:
            self._wait_back(name, proc, timeout)
        return self.get(name)

    def start_all(self, *, wait: bool = True, timeout: float = 60.0) -> list[EndpointInfo]:
        """Bring back every dead endpoint (``chattune endpoints start --all``: at login or
        boot, e.g. from a systemd user unit); running ones are left alone. All gateways start
        first, then each is waited for; one that does not come back is returned with its
        ``error`` and does not stop the others.

        >>> [e.status for e in client.endpoints.start_all()]
        ['running', 'running']
        """
        procs_by_name = {
            info.name: self._restart_gateway(info.name)
            for info in self.list()
            if info.status == "dead"
        }
        for name, proc in procs_by_name.items():
            if not wait:
                continue
            try:
                self._wait_back(name, proc, timeout)
            except RuntimeFailure as exc:  # this one stays down; the others still come back
                self.store.update(name, error=str(exc))
        return [self.get(name) for name in procs_by_name]

    def _restart_gateway(self, name: str) -> subprocess.Popen[bytes]:
        """Start a dead endpoint's gateway again (its deployments follow)."""
        info = self.get(name)
        if info.status != "dead":
            raise ConflictError(
                f"endpoint {name} is {info.status}; only a dead gateway can be started",
                f"see `chattune endpoints show {name}`",
            )
        if info.port and not procs.port_freed(info.host, info.port, within=10.0):
            self.store.update(name, port=None)  # taken by another process: take a new one
        self.store.update(name, status="creating", error=None)
        for record in self.store.deployments(name):  # their old workers died with the gateway
            if record.status != "failed":
                self.store.update_deployment(name, record.name, status="creating", instances=[])
        return self._spawn_gateway(name)

    def _wait_back(self, name: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Wait until a restarted gateway listens and its deployments are ready again."""
        self._wait_listening(name, proc, timeout)
        for deployment in self.list_deployments(name):
            if deployment.status != "failed":
                limit = deployment.settings.liveness_probe.initial_delay + 60
                self._wait_ready(name, deployment.name, limit, None)

    def _spawn_gateway(self, name: str) -> subprocess.Popen[bytes]:
        args = ["-m", GATEWAY_MODULE, "--workspace", str(self.ws.root), "--endpoint", name]
        log_path = self.ws.endpoint_dir(name) / "gateway.log"
        proc = procs.spawn([sys.executable, *args], log_path, new_session=True)
        self._gateways[name] = proc
        self.store.update(name, pid=proc.pid)
        return proc

    def _running(self, name: str) -> EndpointInfo:
        """Endpoint ``name``, refused with the fix unless its gateway is running."""
        info = self.get(name)
        if info.status != "running":
            fix = (
                f"run `chattune endpoints start {name}` first"
                if info.status == "dead"
                else info.error or f"see `chattune endpoints show {name}`"
            )
            raise ConflictError(f"endpoint {name} is {info.status}, not running", fix)
        return info

    def add_node(self, name: str, node: str, port: int = 0, *, timeout: float = 60.0) -> str:
        """Start one more gateway of endpoint ``name`` (as a second machine would run it):
        its own port and workers, the same keys, traffic and deployments, followed from the
        shared workspace and database. It stops when the endpoint is deleted. Its base URL.

        On another machine, run ``python -m chattune.serving.gateway --workspace W
        --endpoint NAME --node NODE --port PORT`` there (a shared workspace and a PostgreSQL
        database: ``chattune init --database postgresql://...``).
        """
        check_name("node", node)
        info = self.get(name)
        if info.status != "running":
            raise ConflictError(f"endpoint {name} is {info.status}, not running", "start it first")
        port = port or procs.free_port(info.host)
        args = ["-m", GATEWAY_MODULE, "--workspace", str(self.ws.root), "--endpoint", name]
        args += ["--node", node, "--port", str(port)]
        log_path = self.ws.endpoint_dir(name) / f"gateway.{node}.log"
        proc = procs.spawn([sys.executable, *args], log_path, new_session=True)
        deadline = time.monotonic() + timeout
        while not procs.port_open(info.host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"gateway node {node} of endpoint {name} did not start: "
                    f"{procs.last_line(log_path)}",
                    f"see {log_path}",
                )
            time.sleep(POLL)
        return f"http://{info.host}:{port}"

    def _wait_listening(self, name: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.get(name)
            if info.status == "running" and procs.port_open(info.host, info.port):
                return
            if proc.poll() is not None:
                why = f"gateway exited with code {proc.returncode}"
                self.store.update(name, status="failed", error=why)
                raise RuntimeFailure(
                    f"gateway of endpoint {name} exited with code {proc.returncode}: "
                    f"{procs.last_line(self._log_path(name, None))}",
                    f"see `chattune endpoints logs {name}`, then `chattune endpoints delete "
                    f"{name}` and retry",
                )
            time.sleep(POLL)
        raise RuntimeFailure(
            f"gateway of endpoint {name} did not start within {timeout:g}s",
            f"see `chattune endpoints logs {name}`",
        )

    def get(self, name: str) -> EndpointInfo:
        """Endpoint ``name``; its status is ``dead`` when the gateway process is gone."""
        record = self.store.get(name)
        if record is None:
            # A name that is not printable (a newline...) is quoted: the error stays one line.
            shown = name if name.isprintable() else repr(name)
            raise NotFoundError(f"endpoint {shown} not found", "see `chattune endpoints list`")
        return self._info(record)

    def list(self) -> list[EndpointInfo]:
        """Every endpoint of the workspace, oldest first."""
        return [self._info(record) for record in self.store.list()]

    def _info(self, record: EndpointRecord) -> EndpointInfo:
        procs.reap(self._gateways.get(record.name))
        deployments = [d.name for d in self.store.deployments(record.name)]
        alive = procs.alive(record.pid, GATEWAY_MODULE)
        return EndpointInfo.from_record(record, deployments, gateway_alive=alive)

    def get_keys(self, name: str) -> dict[str, str]:
        """``{"primary_key": ..., "secondary_key": ...}`` for ``Authorization: Bearer``."""
        self.get(name)
        path = self.ws.endpoint_dir(name) / "keys.json"
        if not path.exists():
            raise NotFoundError(
                f"keys file {path} of endpoint {name} is missing",
                f"`chattune endpoints regenerate-keys {name}` writes new keys",
            )
        stored = keyfile.read_keys(path)
        return {f"{k}_key": stored[k] for k in keyfile.KEY_TYPES}

    def regenerate_keys(self, name: str, key_type: str = "primary") -> dict[str, str]:
        """Replace one key; the old one stops working on the gateway's next request."""
        if key_type not in keyfile.KEY_TYPES:
            raise ValidationError(
                f"key type {key_type!r} is not known", "use 'primary' or 'secondary'"
            )
        self.get(name)
        path = self.ws.endpoint_dir(name) / "keys.json"
        stored = (
            keyfile.read_keys(path)
            if path.exists()
            else {k: keyfile.new_key() for k in keyfile.KEY_TYPES}
        )
        stored[key_type] = keyfile.new_key()
        keyfile.write_keys(path, stored)
        return self.get_keys(name)

    def update(
        self,
        name: str,
        traffic: dict[str, int] | None = None,
        mirror_traffic: dict[str, int] | None = None,
    ) -> EndpointInfo:
        """Set live and/or mirror traffic (each given map replaces the old one).

        >>> client.endpoints.update("my-ep", traffic={"blue": 90, "green": 10})
        """
        info = self._running(name)
        new_traffic = info.traffic if traffic is None else dict(traffic)
        new_mirror = info.mirror_traffic if mirror_traffic is None else dict(mirror_traffic)
        problems = traffic_problems(new_traffic, new_mirror, info.deployments)
        if problems:
            hint = (
                f"e.g. `chattune endpoints update {name} --traffic {info.deployments[0]}=100`"
                if info.deployments
                else f"create one first: `chattune deployments create NAME --endpoint {name} "
                "--model M:V`"
            )
            raise ValidationError(f"endpoint {name}: " + "; ".join(problems), hint)
        self.store.set_traffic(name, new_traffic, new_mirror)
        self._nudge(name)
        return self.get(name)

    def invoke(
        self,
        name: str,
        request: dict[str, Any] | str | os.PathLike[str],
        deployment: str | None = None,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Call the endpoint over HTTP with its key; the answer's JSON.

        ``request`` is a body or a JSON file. A body with ``messages`` goes to
        ``/v1/chat/completions``, any other to ``/score``.

        >>> client.endpoints.invoke("my-ep", "examples/sample_score.json", deployment="demo")
        {'output': '...'}
        """
        body = request if isinstance(request, dict) else read_request(Path(request))
        info = self.get(name)
        if info.status != "running" or not info.base_url:
            raise ConflictError(
                f"endpoint {name} is {info.status}, not running",
                info.error or f"see `chattune endpoints show {name}`",
            )
        key = self.get_keys(name)["primary_key"]
        return post_request(name, info.base_url, key, body, deployment, timeout)

    def get_logs(self, endpoint: str, deployment: str | None = None, lines: int = 100) -> str:
        """Last ``lines`` of the gateway log, or of a deployment's worker log."""
        self.get(endpoint)
        if deployment is not None:
            self.get_deployment(endpoint, deployment)
        return procs.tail(self._log_path(endpoint, deployment), lines)

    def delete(self, name: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop the gateway and its workers, then remove the endpoint's records, keys and logs.

        With ``wait`` (default), returns only once the port is closed and no process of the
        endpoint is left; raises :class:`RuntimeFailure` otherwise.
        """
        info = self.get(name)
        self.store.mark_deleting(name)
        pgid = info.pid  # the gateway leads its own process group; workers are in it
        if pgid and procs.alive(pgid, GATEWAY_MODULE):
            os.kill(pgid, signal.SIGTERM)
        if not wait:
            return
        if pgid:
            procs.wait_gone([pgid], timeout)
            procs.reap(self._gateways.get(name))
            procs.kill_group(pgid, SERVING_MARKER)  # backstop for anything left behind
        left = procs.group_members(pgid, SERVING_MARKER) if pgid else []
        if left or procs.port_open(info.host, info.port):
            raise RuntimeFailure(
                f"endpoint {name}: processes {[p.pid for p in left]} or port {info.port} "
                "still alive after delete",
                f"kill them and run `chattune endpoints delete {name}` again",
            )
        self.store.delete(name)
        shutil.rmtree(self.ws.endpoint_dir(name), ignore_errors=True)

    def keep_mirror_pairs(self, name: str, keep: int, days: float = 7.0) -> dict[str, Any]:
        """Opt in to keeping (live answer, mirror answer, latencies) for mirrored requests,
        at most ``keep`` pairs for ``days`` days; ``keep=0`` turns it off. The running
        gateway picks it up at its next request."""
        from chattune.serving.mirror_compare import set_pairs

        self.get(name)
        return set_pairs(self.ws.endpoint_dir(name), keep, days)

    def compare(self, name: str, samples: int = 3) -> dict[str, Any]:
        """The kept mirror pairs of ``name``: latency percentiles, error rates and answer
        agreement (exact, ROUGE-L) of the live and the mirror deployment, and a sample."""
        from chattune.serving.mirror_compare import pair_settings, summarize
        from chattune.store.resources import MirrorPairStore

        self.get(name)
        pairs = MirrorPairStore(workspace_store(self.ws).db).list(name)
        found = summarize(pairs, samples)
        found["settings"] = pair_settings(self.ws.endpoint_dir(name))
        return found

    # --- helpers ------------------------------------------------------------------------

    def _nudge(self, name: str) -> None:
        """Ask the gateway to reconcile now (best effort: its loop catches up anyway)."""
        info = self.get(name)
        if info.status != "running" or not info.base_url:
            return
        key = self.get_keys(name)["primary_key"]
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                info.base_url + RECONCILE_PATH,
                timeout=10,
                headers={"Authorization": f"Bearer {key}"},
            )

    def _log_path(self, endpoint: str, deployment: str | None) -> Path:
        folder = self.ws.endpoint_dir(endpoint)
        return folder / (f"{deployment}.log" if deployment else "gateway.log")
