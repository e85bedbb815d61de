"""``ml_client.online_endpoints`` and ``ml_client.online_deployments`` over
``client.endpoints``: the same gateway, keys, deployments and traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chattune.azureml.compute import check_size
from chattune.azureml.entities import (
    EndpointAuthKeys,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
)
from chattune.azureml.pipelines import model_ref
from chattune.azureml.poller import Poller
from chattune.errors import NotFoundError

if TYPE_CHECKING:
    from chattune.client import Client

DEFAULT_INITIAL_DELAY = 600
"""Liveness ``initial_delay`` when a probe leaves it unset (chattune's default)."""


class OnlineEndpointOperations:
    """``begin_create_or_update``, ``get``, ``list``, ``get_keys``, ``invoke``,
    ``begin_delete``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def begin_create_or_update(self, endpoint: ManagedOnlineEndpoint) -> Poller:
        """Create the endpoint when it is new; apply its ``traffic`` (and mirror traffic)."""
        names = {e.name for e in self._client.endpoints.list()}
        if endpoint.name not in names:
            self._client.endpoints.create(
                endpoint.name, endpoint.auth_mode, description=endpoint.description or ""
            )
        if endpoint.traffic or endpoint.mirror_traffic:
            self._client.endpoints.update(
                endpoint.name,
                traffic=dict(endpoint.traffic) or None,
                mirror_traffic=dict(endpoint.mirror_traffic) or None,
            )
        return Poller(lambda: self.get(endpoint.name))

    def get(self, name: str) -> ManagedOnlineEndpoint:
        info = self._client.endpoints.get(name)
        state = {"running": "Succeeded", "creating": "Creating", "deleting": "Deleting"}
        return ManagedOnlineEndpoint(
            name=info.name,
            description=info.description,
            auth_mode=info.auth_mode,
            traffic=dict(info.traffic),
            mirror_traffic=dict(info.mirror_traffic),
            scoring_uri=info.scoring_uri,
            openapi_uri=f"{info.base_url}/openapi.json" if info.base_url else None,
            provisioning_state=state.get(info.status, "Failed"),
        )

    def list(self) -> list[ManagedOnlineEndpoint]:
        return [self.get(e.name) for e in self._client.endpoints.list()]

    def get_keys(self, name: str) -> EndpointAuthKeys:
        return EndpointAuthKeys(**self._client.endpoints.get_keys(name))

    def invoke(
        self,
        endpoint_name: str,
        request_file: str | Path | None = None,
        deployment_name: str | None = None,
        **kwargs: Any,
    ) -> str:
        """POST the request file to the endpoint with its key; the raw response text."""
        if request_file is None:
            raise NotFoundError("invoke: request_file is required", "pass a JSON request file")
        answer = self._client.endpoints.invoke(
            endpoint_name, Path(request_file), deployment=deployment_name
        )
        return json.dumps(answer)

    def begin_delete(self, name: str) -> Poller:
        self._client.endpoints.delete(name)
        return Poller()


class OnlineDeploymentOperations:
    """``begin_create_or_update``, ``get``, ``list``, ``get_logs``, ``begin_delete``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def begin_create_or_update(self, deployment: ManagedOnlineDeployment) -> Poller:
        """Deploy; returns once every instance is ready. ``instance_type`` must be this
        machine's size and in the base model's inference allow-list."""
        ref = model_ref(deployment.model)
        size = deployment.instance_type or self._client.compute.show()["kind"]
        what = f"deployment {deployment.name}: instance_type"
        check_size(self._client, size, [], what)  # this machine's, before the model is read
        check_size(self._client, size, self._allow_list(ref), what)
        self._client.endpoints.create_deployment(
            deployment.endpoint_name, deployment.name, ref, **settings(deployment)
        )
        return Poller(lambda: self.get(deployment.name, deployment.endpoint_name))

    def _allow_list(self, ref: str) -> list[str]:
        """The inference allow-list of the model's base catalog model (empty: none)."""
        base = self._client.models.resolve(ref).base_model or ""
        name, _, version = base.partition(":")
        if not self._client.models.is_catalog(name):
            return []
        tags = self._client.models.get(name, version=version or None).tags
        return list(tags.get("inference_compute_allow_list", []))  # type: ignore[call-overload]

    def get(self, name: str, endpoint_name: str) -> ManagedOnlineDeployment:
        info = self._client.endpoints.get_deployment(endpoint_name, name)
        state = {"ready": "Succeeded", "creating": "Creating", "failed": "Failed"}
        return ManagedOnlineDeployment(
            name=info.name,
            endpoint_name=info.endpoint,
            model=info.model,
            instance_type=self._client.compute.show()["kind"],
            instance_count=info.settings.instance_count,
            provisioning_state=state.get(info.status, info.status.capitalize()),
        )

    def list(self, endpoint_name: str) -> list[ManagedOnlineDeployment]:
        return [
            self.get(d.name, endpoint_name)
            for d in self._client.endpoints.list_deployments(endpoint_name)
        ]

    def get_logs(self, name: str, endpoint_name: str, lines: int = 100, **kwargs: Any) -> str:
        return self._client.endpoints.get_logs(endpoint_name, name, lines)

    def begin_delete(self, name: str, endpoint_name: str) -> Poller:
        self._client.endpoints.delete_deployment(endpoint_name, name)
        return Poller()


def settings(deployment: ManagedOnlineDeployment) -> dict[str, Any]:
    """The deployment's chattune settings: instance count, probes and request limits."""
    chosen: dict[str, Any] = {"instance_count": deployment.instance_count}
    if deployment.liveness_probe is not None:
        probe = deployment.liveness_probe.fields()
        chosen["liveness_probe"] = {"initial_delay": DEFAULT_INITIAL_DELAY, **probe}
    if deployment.readiness_probe is not None:
        chosen["readiness_probe"] = deployment.readiness_probe.fields()
    if deployment.request_settings is not None:
        chosen |= deployment.request_settings.fields()
    return chosen
