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
    from chattune.catalog.assets import AssetsAPI
    from chattune.compute.api import ComputeAPI
    from chattune.data.api import DataAPI
    from chattune.jobs.api import JobsAPI
    from chattune.registry.api import ModelsAPI
    from chattune.serving.endpoints import EndpointsAPI
    from chattune.serving.engines import EnginesAPI


class Client:
    """Entry point of the SDK; the CLI is this object plus printing."""

    def __init__(self, workspace: str | os.PathLike[str] | Workspace | None = None) -> None:
        self.workspace = (
            workspace if isinstance(workspace, Workspace) else Workspace.find(workspace)
        )

    @cached_property
    def assets(self) -> AssetsAPI:
        """The offline models and data (in the user cache, not the workspace)."""
        from chattune.catalog.assets import AssetsAPI

        return AssetsAPI()

    @classmethod
    def init(
        cls, workspace: str | os.PathLike[str] | None = None, database: str | None = None
    ) -> Client:
        """Create the workspace up front (``chattune init``): folders, config, the metadata
        database (created on a PostgreSQL server when missing) and MLflow's database."""
        from chattune.store import workspace_store
        from chattune.store.db import create_database

        ws = Workspace.init(workspace, database)
        create_database(ws.database_connect_uri)
        create_database(ws.mlflow_connect_uri)
        workspace_store(ws)
        return cls(ws)

    @cached_property
    def engines(self) -> EnginesAPI:
        """Serving engines (``transformers`` built in, ``vllm`` installed on request)."""
        from chattune.serving.engines import EnginesAPI

        return EnginesAPI()

    @cached_property
    def data(self) -> DataAPI:
        from chattune.catalog import assets, sources
        from chattune.data.api import DataAPI, Resolvers

        return DataAPI(
            self.workspace,
            Resolvers(
                dataset_names=assets.DATASETS,
                dataset_folder=assets.require,
                model_folder=lambda ref: sources.materialize(sources.parse(ref)),
            ),
        )

    @cached_property
    def models(self) -> ModelsAPI:
        from chattune.registry.api import ModelsAPI

        return ModelsAPI(self.workspace)

    @cached_property
    def compute(self) -> ComputeAPI:
        from chattune.compute.api import ComputeAPI

        return ComputeAPI(self.workspace)

    @cached_property
    def jobs(self) -> JobsAPI:
        from chattune.jobs.api import JobsAPI

        return JobsAPI(self.workspace)

    @cached_property
    def endpoints(self) -> EndpointsAPI:
        from chattune.serving.endpoints import EndpointsAPI

        return EndpointsAPI(self.workspace, resolve_model=self.models.resolve_for_serving)
