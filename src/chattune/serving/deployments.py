"""Deployment calls of :class:`~chattune.serving.endpoints.EndpointsAPI` (split for size).

A new deployment gets 0% traffic, as in Azure ML: it serves requests that name it in the
``azureml-model-deployment`` header until ``update(traffic=...)`` gives it a share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chattune.errors import ConflictError, NotFoundError, RuntimeFailure
from chattune.serving.info import DeploymentInfo
from chattune.serving.settings import DeploymentSettings
from chattune.serving.traffic import check_name

if TYPE_CHECKING:
    from chattune.serving.info import EndpointInfo
    from chattune.store.endpoints import EndpointStore
    from chattune.workspace import Workspace

Progress = Callable[[DeploymentInfo, float], None]
"""Called while waiting with the deployment's latest record and the seconds waited."""
START_MARGIN_S = 60.0
"""Waited beyond the liveness ``initial_delay`` before ``create_deployment`` gives up."""


class DeploymentsMixin:
    """``create_deployment``, ``update_deployment``, ``get_deployment``, ``list_deployments``,
    ``delete_deployment``."""

    ws: Workspace
    store: EndpointStore
    resolve_model: Callable[[str], tuple[str, Path]]

    if TYPE_CHECKING:

        def get(self, name: str) -> EndpointInfo: ...
        def _nudge(self, name: str) -> None: ...

    def create_deployment(
        self,
        endpoint: str,
        name: str,
        model: str,
        settings: DeploymentSettings | None = None,
        *,
        wait: bool = True,
        timeout: float | None = None,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> DeploymentInfo:
        """Deploy ``model`` (``NAME:VERSION`` or ``NAME@label``) as ``name`` on ``endpoint``.

        ``settings`` defaults to :class:`DeploymentSettings`; keyword ``overrides`` set single
        fields (``instance_count=2``, ``request_timeout_ms=5000``, ``engine="vllm"``, or
        ``liveness_initial_delay=120`` for the liveness probe's ``initial_delay``). Waits
        (unless ``wait=False``) until every instance is ready, which is as soon as the model
        is loaded; the liveness ``initial_delay`` is the most that may take.

        >>> client.endpoints.create_deployment("my-ep", "demo", "phi3-ultrachat:1")
        >>> client.endpoints.create_deployment("my-ep", "big", "phi3:1", instance_count=2)
        """
        check_name("deployment", name)
        chosen = DeploymentSettings.from_overrides(settings, overrides)
        info = self.get(endpoint)
        if info.status != "running":
            raise ConflictError(
                f"endpoint {endpoint} is {info.status}, not running",
                info.error or f"see `chattune endpoints show {endpoint}`",
            )
        canonical, path = self.resolve_model(model)
        self.store.insert_deployment(endpoint, name, canonical, str(path), chosen.model_dump())
        self._nudge(endpoint)
        if not wait:
            return self.get_deployment(endpoint, name)
        if timeout is None:
            timeout = chosen.liveness_probe.initial_delay + START_MARGIN_S
        return self._wait_ready(endpoint, name, timeout, progress)

    def _wait_ready(
        self, endpoint: str, name: str, limit: float, progress: Progress | None
    ) -> DeploymentInfo:
        started = time.monotonic()
        hint = f"see `chattune deployments logs {name} --endpoint {endpoint}`"
        while True:
            info = self.get_deployment(endpoint, name)
            waited = time.monotonic() - started
            if progress is not None:
                progress(info, waited)
            if info.status == "ready":
                return info
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

    def update_deployment(
        self,
        endpoint: str,
        name: str,
        settings: DeploymentSettings | None = None,
        *,
        wait: bool = True,
        timeout: float | None = None,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> DeploymentInfo:
        """Change a live deployment's settings (``instance_count=3``,
        ``request_timeout_ms=5000``, ``max_concurrent_requests_per_instance=4``, ... as for
        :meth:`create_deployment`; the others keep their values), rolling: workers with the new
        settings start beside the serving ones, take over once all are ready, and the old ones
        stop when their requests have finished, so no request fails on the way. Waits (unless
        ``wait=False``) until the new workers serve; if they fail, the old ones go on serving
        and this raises with their error.

        >>> client.endpoints.update_deployment("my-ep", "demo", instance_count=2)
        """
        current = self.get_deployment(endpoint, name)
        if self.get(endpoint).status != "running":
            raise ConflictError(
                f"endpoint {endpoint} is not running",
                f"start it first: `chattune endpoints start {endpoint}`",
            )
        if current.status == "failed":
            raise ConflictError(
                f"deployment {name} on endpoint {endpoint} failed: {current.error}",
                "delete it and create it again with the settings you want",
            )
        chosen = DeploymentSettings.from_overrides(settings or current.settings, overrides)
        if chosen == current.settings:
            return current
        self.store.set_deployment_settings(endpoint, name, chosen.model_dump())
        self._nudge(endpoint)
        if not wait:
            return self.get_deployment(endpoint, name)
        if timeout is None:
            timeout = chosen.liveness_probe.initial_delay + START_MARGIN_S
        return self._wait_rolled(endpoint, name, chosen, timeout, progress)

    def _wait_rolled(
        self,
        endpoint: str,
        name: str,
        chosen: DeploymentSettings,
        limit: float,
        progress: Progress | None,
    ) -> DeploymentInfo:
        """Until every instance of ``name`` runs with ``chosen``; raises when the roll failed."""
        started, mark = time.monotonic(), chosen.fingerprint()
        hint = f"see `chattune deployments logs {name} --endpoint {endpoint}`"
        while True:
            info = self.get_deployment(endpoint, name)
            if progress is not None:
                progress(info, time.monotonic() - started)
            if info.settings != chosen or info.status == "failed":  # old settings back
                raise RuntimeFailure(
                    f"updating deployment {name} on endpoint {endpoint}: {info.error}", hint
                )
            rolled = [i for i in info.instances if i.get("settings") == mark]
            complete = len(rolled) == len(info.instances) == chosen.instance_count
            if complete and info.status == "ready":
                return info
            if time.monotonic() - started > limit:
                raise RuntimeFailure(
                    f"deployment {name} on endpoint {endpoint} not updated after {limit:g}s "
                    "(the previous workers still serve)",
                    hint,
                )
            time.sleep(0.2)

    def get_deployment(self, endpoint: str, name: str) -> DeploymentInfo:
        """Deployment ``name`` of ``endpoint`` with its settings and instances."""
        alive = self.get(endpoint).status != "dead"  # also names a missing endpoint
        record = self.store.get_deployment(endpoint, name)
        if record is None:
            raise NotFoundError(
                f"deployment {name} not found on endpoint {endpoint}",
                f"see `chattune deployments list --endpoint {endpoint}`",
            )
        return DeploymentInfo.from_record(record, gateway_alive=alive)

    def list_deployments(self, endpoint: str) -> list[DeploymentInfo]:
        """The endpoint's deployments, oldest first."""
        alive = self.get(endpoint).status != "dead"
        return [
            DeploymentInfo.from_record(r, gateway_alive=alive)
            for r in self.store.deployments(endpoint)
        ]

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
        # Without a running gateway no worker runs, so the record can go at once.
        self.store.mark_deployment_deleting(endpoint, name, remove=info.status != "running")
        self._nudge(endpoint)
        deadline = time.monotonic() + timeout
        while wait and self.store.get_deployment(endpoint, name) is not None:
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"deployment {name} still stopping after {timeout:g}s",
                    f"see `chattune endpoints logs {endpoint}`",
                )
            time.sleep(0.1)
