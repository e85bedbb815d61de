"""The SDK: ``Client(workspace)`` with one attribute per noun of the flow.

>>> from chattune import Client
>>> client = Client()
>>> job = client.jobs.create("examples/job.yaml")
>>> client.jobs.stream(job.name)

Each attribute is built on first use so that importing the SDK stays cheap.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from chattune.workspace import Workspace

if TYPE_CHECKING:
    from chattune.catalog.compute import ComputeAPI
    from chattune.data.api import DataAPI
    from chattune.jobs.api import JobsAPI
    from chattune.registry.api import ModelsAPI
    from chattune.serving.api import EndpointsAPI


class Client:
    """Entry point of the SDK; the CLI is this object plus printing."""

    def __init__(self, workspace: str | os.PathLike[str] | Workspace | None = None) -> None:
        self.workspace = (
            workspace if isinstance(workspace, Workspace) else Workspace.find(workspace)
        )

    @cached_property
    def data(self) -> DataAPI:
        from chattune.data.api import DataAPI

        return DataAPI(self.workspace)

    @cached_property
    def models(self) -> ModelsAPI:
        from chattune.registry.api import ModelsAPI

        return ModelsAPI(self.workspace)

    @cached_property
    def compute(self) -> ComputeAPI:
        from chattune.catalog.compute import ComputeAPI

        return ComputeAPI(self.workspace)

    @cached_property
    def jobs(self) -> JobsAPI:
        from chattune.jobs.api import JobsAPI

        return JobsAPI(self.workspace)

    @cached_property
    def endpoints(self) -> EndpointsAPI:
        from chattune.serving.api import EndpointsAPI

        return EndpointsAPI(self.workspace, resolve_model=self.models.resolve_for_serving)
