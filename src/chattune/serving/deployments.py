"""Deployment calls of :class:`~chattune.serving.api.EndpointsAPI` (split for size).

A new deployment gets 0% traffic, as in Azure ML: it serves requests that name it in the
``azureml-model-deployment`` header until ``update(traffic=...)`` gives it a share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chattune.errors import ConflictError, NotFoundError, RuntimeFailure, ValidationError
from chattune.serving import state
from chattune.serving.state import DeploymentInfo, DeploymentSettings, ProbeSettings
from chattune.serving.traffic import check_name

if TYPE_CHECKING:
    from chattune.serving.state import EndpointInfo
    from chattune.workspace import Workspace

Progress = Callable[[DeploymentInfo, float], None]
"""Called while waiting with the deployment's latest record and the seconds waited."""


class DeploymentsMixin:
    ws: Workspace
    resolve_model: Callable[[str], tuple[str, Path]]

    if TYPE_CHECKING:

        def get(self, name: str) -> EndpointInfo: ...
        def _nudge(self, name: str) -> None: ...

    def create_deployment(
        self,
        endpoint: str,
        name: str,
        model: str,
        *,
        instance_count: int = 1,
        request_timeout_ms: int = 90_000,
        liveness_initial_delay: float = 600.0,
        max_concurrent_requests_per_instance: int = 1,
        max_queue_wait_ms: int = 500,
        liveness_probe: ProbeSettings | None = None,
        readiness_probe: ProbeSettings | None = None,
        max_batch_size: int = 8,
        wait: bool = True,
        timeout: float | None = None,
        progress: Progress | None = None,
    ) -> DeploymentInfo:
        """Deploy ``model`` (``NAME:VERSION`` or ``NAME@label``) as ``name`` on ``endpoint``.

        Waits (unless ``wait=False``) until every instance is ready, which is as soon as the
        model is loaded; ``liveness_initial_delay`` seconds is the most that may take.

        >>> client.endpoints.create_deployment("my-ep", "demo", "phi3-ultrachat:1")
        """
        check_name("deployment", name)
        problems = [
            f"{label} must be >= 1, got {value}"
            for label, value in (
                ("instance_count", instance_count),
                ("request_timeout_ms", request_timeout_ms),
                ("max_concurrent_requests_per_instance", max_concurrent_requests_per_instance),
                ("max_batch_size", max_batch_size),
            )
            if value < 1
        ]
        problems += ["max_queue_wait_ms must be >= 0"] if max_queue_wait_ms < 0 else []
        problems += ["liveness_initial_delay must be > 0"] if liveness_initial_delay <= 0 else []
        if problems:
            raise ValidationError(
                f"deployment {name}: " + "; ".join(problems),
                "see `chattune deployments create --help`",
            )
        info = self.get(endpoint)
        if info.status != "running":
            raise ConflictError(
                f"endpoint {endpoint} is {info.status}, not running",
                info.error or f"see `chattune endpoints show {endpoint}`",
            )
        canonical, path = self.resolve_model(model)
        live = liveness_probe or ProbeSettings(liveness_initial_delay)
        settings = DeploymentSettings(
            instance_count=instance_count,
            request_timeout_ms=request_timeout_ms,
            max_concurrent_requests_per_instance=max_concurrent_requests_per_instance,
            max_queue_wait_ms=max_queue_wait_ms,
            liveness_probe=live,
            readiness_probe=readiness_probe or ProbeSettings(0.0),
            max_batch_size=max_batch_size,
        )
        with self.ws.db() as conn:
            if conn.execute(
                "SELECT 1 FROM deployments WHERE endpoint = ? AND name = ?", (endpoint, name)
            ).fetchone():
                raise ConflictError(
                    f"deployment {name} already exists on endpoint {endpoint}",
                    f"pick another name or `chattune deployments delete {name} --endpoint "
                    f"{endpoint}`",
                )
            conn.execute(
                "INSERT INTO deployments (endpoint, name, model, model_path, settings, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, 'creating', ?)",
                (endpoint, name, canonical, str(path), settings.to_json(), time.time()),
            )
        self._nudge(endpoint)
        if not wait:
            return self.get_deployment(endpoint, name)
        limit = timeout if timeout is not None else live.initial_delay + 60
        return self._wait_ready(endpoint, name, limit, progress)

    def _wait_ready(
        self, endpoint: str, name: str, limit: float, progress: Progress | None
    ) -> DeploymentInfo:
        started = time.monotonic()
        while True:
            info = self.get_deployment(endpoint, name)
            waited = time.monotonic() - started
            if progress is not None:
                progress(info, waited)
            if info.status == "ready":
                return info
            hint = f"see `chattune deployments logs {name} --endpoint {endpoint}`"
            if info.status == "failed":
                raise RuntimeFailure(
                    f"deployment {name} on endpoint {endpoint} failed: {info.error}", hint
                )
            if self.get(endpoint).status != "running":
                raise RuntimeFailure(
                    f"endpoint {endpoint} stopped while deployment {name} was starting",
                    f"see `chattune endpoints logs {endpoint}`",
                )
            if waited > limit:
                raise RuntimeFailure(
                    f"deployment {name} on endpoint {endpoint} not ready after {limit:g}s "
                    f"(status {info.status})",
                    hint,
                )
            time.sleep(0.2)

    def get_deployment(self, endpoint: str, name: str) -> DeploymentInfo:
        with self.ws.db() as conn:
            row = conn.execute(
                "SELECT * FROM deployments WHERE endpoint = ? AND name = ?", (endpoint, name)
            ).fetchone()
            if row is None:
                exists = state.endpoint_row(conn, endpoint) is not None
        if row is None:
            if not exists:
                raise NotFoundError(
                    f"endpoint {endpoint} not found", "see `chattune endpoints list`"
                )
            raise NotFoundError(
                f"deployment {name} not found on endpoint {endpoint}",
                f"see `chattune deployments list --endpoint {endpoint}`",
            )
        return DeploymentInfo.from_row(row)

    def list_deployments(self, endpoint: str) -> list[DeploymentInfo]:
        self.get(endpoint)
        with self.ws.db() as conn:
            rows = state.deployment_rows(conn, endpoint)
        return [DeploymentInfo.from_row(r) for r in rows]

    def delete_deployment(
        self, endpoint: str, name: str, *, wait: bool = True, timeout: float = 30.0
    ) -> None:
        """Stop a deployment's workers and remove it; refused while it has traffic."""
        info = self.get(endpoint)
        self.get_deployment(endpoint, name)
        if info.traffic.get(name, 0) > 0 or info.mirror_traffic.get(name, 0) > 0:
            raise ConflictError(
                f"deployment {name} still gets traffic on endpoint {endpoint}",
                f"set it to 0 first: `chattune endpoints update {endpoint} --traffic {name}=0` "
                "(or give its share to another deployment)",
            )
        with self.ws.db() as conn:
            conn.execute(
                "UPDATE deployments SET status = ? WHERE endpoint = ? AND name = ?",
                (state.DELETING, endpoint, name),
            )
            if info.status != "running":  # no gateway to stop workers: nothing runs
                conn.execute(
                    "DELETE FROM deployments WHERE endpoint = ? AND name = ?", (endpoint, name)
                )
        self._nudge(endpoint)
        deadline = time.monotonic() + timeout
        while wait:
            with self.ws.db() as conn:
                if (
                    conn.execute(
                        "SELECT 1 FROM deployments WHERE endpoint = ? AND name = ?",
                        (endpoint, name),
                    ).fetchone()
                    is None
                ):
                    return
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"deployment {name} still stopping after {timeout:g}s",
                    f"see `chattune endpoints logs {endpoint}`",
                )
            time.sleep(0.1)
