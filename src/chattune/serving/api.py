"""The endpoints SDK: ``client.endpoints``. The CLI is this object plus printing.

The database holds the desired state (endpoint, deployments, traffic); each endpoint's gateway
process reconciles its workers to it and writes the observed status back. Calls here write
rows, nudge the gateway, and (unless ``wait=False``) wait for the observed state.

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
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from chattune.errors import (
    ConflictError,
    NotFoundError,
    RuntimeFailure,
    ValidationError,
)
from chattune.serving import keys as keyfile
from chattune.serving import procs, state
from chattune.serving.deployments import DeploymentsMixin
from chattune.serving.state import EndpointInfo
from chattune.serving.traffic import check_name, traffic_problems
from chattune.workspace import Workspace, dumps

AUTH_MODES = ("key",)
GATEWAY_MARKER = "chattune.serving.gateway"
SERVING_MARKER = "chattune.serving."
POLL = 0.1


class EndpointsAPI(DeploymentsMixin):
    """Create, inspect, call and delete online endpoints and their deployments."""

    def __init__(
        self, workspace: Workspace, resolve_model: Callable[[str], tuple[str, Path]]
    ) -> None:
        self.ws = workspace
        self.resolve_model = resolve_model
        self._gateways: dict[str, subprocess.Popen[bytes]] = {}

    # --- endpoints ----------------------------------------------------------------------

    def create(
        self, name: str, auth_mode: str = "key", *, wait: bool = True, timeout: float = 60.0
    ) -> EndpointInfo:
        """Create endpoint ``name`` and start its gateway; wait until it listens.

        >>> client.endpoints.create("my-ep").scoring_uri
        'http://127.0.0.1:41234/score'
        """
        check_name("endpoint", name)
        if auth_mode not in AUTH_MODES:
            raise ValidationError(
                f"auth_mode {auth_mode!r} is not supported", f"use one of: {', '.join(AUTH_MODES)}"
            )
        host = str(self.ws.config.get("host") or "127.0.0.1")
        with self.ws.db() as conn:
            if state.endpoint_row(conn, name) is not None:
                raise ConflictError(
                    f"endpoint {name} already exists",
                    f"pick another name or `chattune endpoints delete {name}`",
                )
            conn.execute(
                "INSERT INTO endpoints (name, host, auth_mode, status, created_at) "
                "VALUES (?, ?, ?, 'creating', ?)",
                (name, host, auth_mode, time.time()),
            )
        folder = self.ws.endpoint_dir(name)
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an endpoint of that name
        folder.mkdir(parents=True)
        keyfile.write_keys(folder / "keys.json", {k: keyfile.new_key() for k in keyfile.KEY_TYPES})
        cmd = [
            sys.executable,
            "-m",
            GATEWAY_MARKER,
            "--workspace",
            str(self.ws.root),
            "--endpoint",
            name,
        ]
        proc = procs.spawn(cmd, folder / "gateway.log", new_session=True)
        self._gateways[name] = proc
        state.set_endpoint(self.ws, name, pid=proc.pid)
        if wait:
            self._wait_listening(name, proc, timeout)
        return self.get(name)

    def _wait_listening(self, name: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.get(name)
            if info.status == "running" and procs.port_open(info.host, info.port):
                return
            if proc.poll() is not None:
                state.set_endpoint(
                    self.ws,
                    name,
                    status="failed",
                    error=f"gateway exited with code {proc.returncode}",
                )
                raise RuntimeFailure(
                    f"gateway of endpoint {name} exited with code {proc.returncode}: "
                    f"{self._last_line(name, None)}",
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
        with self.ws.db() as conn:
            row = state.endpoint_row(conn, name)
            if row is None:
                raise NotFoundError(f"endpoint {name} not found", "see `chattune endpoints list`")
            deployments = [r["name"] for r in state.deployment_rows(conn, name)]
        return self._info(row, deployments)

    def list(self) -> list[EndpointInfo]:
        """Every endpoint of the workspace, oldest first."""
        with self.ws.db() as conn:
            rows = conn.execute("SELECT * FROM endpoints ORDER BY created_at").fetchall()
            names = {
                r["name"]: [d["name"] for d in state.deployment_rows(conn, r["name"])] for r in rows
            }
        return [self._info(row, names[row["name"]]) for row in rows]

    def _info(self, row: Any, deployments: list[str]) -> EndpointInfo:
        status, error = row["status"], row["error"]
        self._reap(row["name"])
        started = status == "running" or (status == "creating" and row["pid"])
        if started and not procs.alive(row["pid"], GATEWAY_MARKER):
            status = "dead"
            error = (
                f"gateway process {row['pid']} is not running; delete the endpoint and "
                "create it again"
            )
        return EndpointInfo(
            name=row["name"],
            status=status,
            auth_mode=row["auth_mode"],
            host=row["host"],
            port=row["port"],
            pid=row["pid"],
            traffic=json.loads(row["traffic"]),
            mirror_traffic=json.loads(row["mirror_traffic"]),
            deployments=deployments,
            error=error,
            created_at=row["created_at"],
        )

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
        info = self.get(name)
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
        with self.ws.db() as conn:
            conn.execute(
                "UPDATE endpoints SET traffic = ?, mirror_traffic = ? WHERE name = ?",
                (dumps(new_traffic), dumps(new_mirror), name),
            )
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
        body = request if isinstance(request, dict) else _read_request(Path(request))
        info = self.get(name)
        if info.status != "running" or not info.base_url:
            raise ConflictError(
                f"endpoint {name} is {info.status}, not running",
                info.error or f"see `chattune endpoints show {name}`",
            )
        path = "/v1/chat/completions" if "messages" in body else "/score"
        headers = {"Authorization": f"Bearer {self.get_keys(name)['primary_key']}"}
        if deployment:
            headers["azureml-model-deployment"] = deployment
        try:
            answer = httpx.post(info.base_url + path, json=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise RuntimeFailure(
                f"endpoint {name} did not answer: {exc}", f"see `chattune endpoints logs {name}`"
            ) from None
        if answer.status_code != 200:
            raise _answer_error(name, answer)
        return answer.json()

    def get_logs(self, endpoint: str, deployment: str | None = None, lines: int = 100) -> str:
        """Last ``lines`` of the gateway log, or of a deployment's worker log."""
        self.get(endpoint)
        if deployment is not None:
            self.get_deployment(endpoint, deployment)
        return procs.tail(self._log_path(endpoint, deployment), lines)

    def delete(self, name: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop the gateway and its workers, then remove the endpoint's rows, keys and logs.

        With ``wait`` (default), returns only once the port is closed and no process of the
        endpoint is left; raises :class:`RuntimeFailure` otherwise.
        """
        info = self.get(name)
        with self.ws.db() as conn:
            conn.execute("UPDATE endpoints SET status = ? WHERE name = ?", (state.DELETING, name))
        pgid = info.pid  # the gateway leads its own process group; workers are in it
        if pgid and procs.alive(pgid, GATEWAY_MARKER):
            os.kill(pgid, signal.SIGTERM)
        if not wait:
            return
        if pgid:
            procs.wait_gone([pgid], timeout)
            self._reap(name)
            procs.kill_group(pgid, SERVING_MARKER)  # backstop for anything left behind
        left = procs.group_members(pgid, SERVING_MARKER) if pgid else []
        if left or procs.port_open(info.host, info.port):
            raise RuntimeFailure(
                f"endpoint {name}: processes {[p.pid for p in left]} or port {info.port} "
                "still alive after delete",
                f"kill them and run `chattune endpoints delete {name}` again",
            )
        with self.ws.db() as conn:
            conn.execute("DELETE FROM deployments WHERE endpoint = ?", (name,))
            conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))
        shutil.rmtree(self.ws.endpoint_dir(name), ignore_errors=True)

    # --- helpers ------------------------------------------------------------------------

    def _nudge(self, name: str) -> None:
        """Ask the gateway to reconcile now (best effort: its loop catches up anyway)."""
        info = self.get(name)
        if info.status != "running" or not info.base_url:
            return
        key = self.get_keys(name)["primary_key"]
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{info.base_url}/.chattune/reconcile",
                timeout=10,
                headers={"Authorization": f"Bearer {key}"},
            )

    def _reap(self, name: str) -> None:
        procs.reap(self._gateways.get(name))

    def _log_path(self, endpoint: str, deployment: str | None) -> Path:
        folder = self.ws.endpoint_dir(endpoint)
        return folder / (f"{deployment}.log" if deployment else "gateway.log")

    def _last_line(self, endpoint: str, deployment: str | None) -> str:
        lines = [
            x
            for x in procs.tail(self._log_path(endpoint, deployment), 20).splitlines()
            if x.strip()
        ]
        return lines[-1].strip()[:300] if lines else "(no log output)"


def _read_request(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NotFoundError(
            f"request file {path} not found", "pass a JSON file, e.g. examples/sample_score.json"
        )
    try:
        body = json.loads(path.read_text())
    except ValueError as exc:
        raise ValidationError(
            f"request file {path} is not valid JSON: {exc}", "fix the JSON syntax"
        ) from None
    if not isinstance(body, dict):
        raise ValidationError(
            f"request file {path} must hold a JSON object", 'start it with {"input_data": ...}'
        )
    return body


def _answer_error(name: str, answer: httpx.Response) -> Exception:
    try:
        error = answer.json()["error"]
        text = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = answer.text[:300]
    message = f"endpoint {name} answered {answer.status_code} {text}"
    hint = f"see `chattune endpoints logs {name}`"
    if answer.status_code in (400, 413, 422):
        return ValidationError(message, "fix the request body")
    if answer.status_code == 404:
        return NotFoundError(message, f"see `chattune endpoints show {name}`")
    return RuntimeFailure(message, hint)
