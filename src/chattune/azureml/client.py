"""``MLClient``: the platform client's surface over one :class:`chattune.Client`.

A workspace client (``subscription_id``, ``resource_group_name``, ``workspace_name``: accepted,
no local meaning) works on the chattune workspace found as the CLI finds it
(``$CHATTUNE_WORKSPACE``, else ``./.chattune``; or ``workspace=PATH``). A registry client
(``registry_name="azureml"``) is a view of the model catalog and its pipeline component.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from chattune.azureml.compute import ComputeOperations
from chattune.azureml.endpoints import OnlineDeploymentOperations, OnlineEndpointOperations
from chattune.azureml.entities import (
    AmlCompute,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    PipelineJob,
)
from chattune.azureml.jobs import JobOperations
from chattune.azureml.models import ComponentOperations, ModelOperations
from chattune.azureml.poller import Poller
from chattune.client import Client
from chattune.errors import ValidationError


class MLClient:
    """``MLClient(credential, subscription_id=, resource_group_name=, workspace_name=)`` or
    ``MLClient(credential, registry_name="azureml")``.

    >>> workspace_ml_client = MLClient(DefaultAzureCredential(), "sub", "rg", "ws")
    >>> workspace_ml_client.compute.list_sizes()[0].name
    'local-cpu'
    """

    def __init__(
        self,
        credential: Any = None,
        subscription_id: str | None = None,
        resource_group_name: str | None = None,
        workspace_name: str | None = None,
        registry_name: str | None = None,
        *,
        workspace: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.credential = credential
        self.subscription_id = subscription_id
        self.resource_group_name = resource_group_name
        self.workspace_name = workspace_name
        self.registry_name = registry_name
        self.client = Client(workspace)
        """The chattune SDK every operation calls."""

    @classmethod
    def from_config(
        cls, credential: Any = None, path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> MLClient:
        """A workspace client of the chattune workspace found (``path``: its folder)."""
        return cls(credential, workspace=path)

    def _workspace_only(self, what: str) -> None:
        if self.registry_name is not None:
            raise ValidationError(
                f"{what}: a registry client (registry_name={self.registry_name!r}) has "
                "models and components only",
                "use the workspace client: MLClient(credential, subscription_id, "
                "resource_group_name, workspace_name)",
            )

    @cached_property
    def models(self) -> ModelOperations:
        return ModelOperations(self.client, registry=self.registry_name is not None)

    @cached_property
    def components(self) -> ComponentOperations:
        return ComponentOperations()

    @cached_property
    def compute(self) -> ComputeOperations:
        self._workspace_only("compute")
        return ComputeOperations(self.client)

    @cached_property
    def jobs(self) -> JobOperations:
        self._workspace_only("jobs")
        return JobOperations(self.client)

    @cached_property
    def online_endpoints(self) -> OnlineEndpointOperations:
        self._workspace_only("online_endpoints")
        return OnlineEndpointOperations(self.client)

    @cached_property
    def online_deployments(self) -> OnlineDeploymentOperations:
        self._workspace_only("online_deployments")
        return OnlineDeploymentOperations(self.client)

    def begin_create_or_update(self, entity: Any, **kwargs: Any) -> Poller:
        """An endpoint, a deployment or a compute, by its type."""
        if isinstance(entity, ManagedOnlineEndpoint):
            return self.online_endpoints.begin_create_or_update(entity)
        if isinstance(entity, ManagedOnlineDeployment):
            return self.online_deployments.begin_create_or_update(entity)
        if isinstance(entity, AmlCompute):
            return self.compute.begin_create_or_update(entity)
        raise _not_supported("begin_create_or_update", entity)

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        """A model (registered from a job output) or a pipeline job (submitted)."""
        if isinstance(entity, Model):
            return self.models.create_or_update(entity)
        if isinstance(entity, PipelineJob):
            return self.jobs.create_or_update(entity, **kwargs)
        raise _not_supported("create_or_update", entity)


def _not_supported(call: str, entity: Any) -> ValidationError:
    return ValidationError(
        f"{call}: {type(entity).__name__} is not supported locally",
        "pass a ManagedOnlineEndpoint, ManagedOnlineDeployment, AmlCompute, Model or PipelineJob",
    )
