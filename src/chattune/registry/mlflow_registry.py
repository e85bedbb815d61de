"""Each chattune model version mirrored as an MLflow registered model version.

MLflow numbers versions itself (1, 2, ...); the chattune version is the tag
``chattune.version``. Labels are MLflow aliases, except ``latest``, which MLflow reserves
and resolves to the highest version on its own (``models:/NAME@latest``) — the newest
registration, as in chattune. Calls hold the workspace's MLflow lock: MLflow's SQLite
store allocates version numbers without one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from chattune.store.models import RegisteredModel
from chattune.workspace import Workspace, file_lock

_RESERVED = "latest"


class MlflowRegistry:
    """The workspace's MLflow model registry (same store as its runs)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def add_version(self, model: RegisteredModel, run_id: str | None) -> str:
        """Register ``model`` (its folder as the source); the MLflow version number."""
        from mlflow.exceptions import MlflowException

        with self._client() as client:
            with contextlib.suppress(MlflowException):  # exists already
                client.create_registered_model(model.name)
            done = _find(client, model)  # made by a register killed before it noted the number
            if done is not None:
                return done
            mv = client.create_model_version(
                model.name,
                source=model.path,
                run_id=_existing_run(client, run_id),
                tags=_tags(model),
                description=model.description or None,
            )
            for label in model.labels:
                if label != _RESERVED:
                    client.set_registered_model_alias(model.name, label, mv.version)
            return str(mv.version)

    def set_alias(self, name: str, mlflow_version: str, label: str) -> None:
        if label == _RESERVED:
            return
        with self._client() as client:
            client.set_registered_model_alias(name, label, mlflow_version)

    def delete_alias(self, name: str, label: str) -> None:
        from mlflow.exceptions import MlflowException

        if label == _RESERVED:
            return
        with self._client() as client, contextlib.suppress(MlflowException):
            client.delete_registered_model_alias(name, label)

    def set_tag(self, name: str, mlflow_version: str, key: str, value: str) -> None:
        with self._client() as client:
            client.set_model_version_tag(name, mlflow_version, key, value)

    def delete_version(self, name: str, mlflow_version: str) -> None:
        from mlflow.exceptions import MlflowException

        with self._client() as client, contextlib.suppress(MlflowException):
            client.delete_model_version(name, mlflow_version)

    @contextlib.contextmanager
    def _client(self) -> Any:
        import mlflow

        with file_lock(self.ws.root / ".mlflow.lock"):
            yield mlflow.MlflowClient(
                tracking_uri=self.ws.mlflow_connect_uri, registry_uri=self.ws.mlflow_connect_uri
            )


def _find(client: Any, model: RegisteredModel) -> str | None:
    found = client.search_model_versions(f"name='{model.name}'")
    mine = [v for v in found if v.tags.get("chattune.version") == model.version]
    return str(mine[0].version) if mine else None


def _existing_run(client: Any, run_id: str | None) -> str | None:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        client.get_run(run_id)
    except MlflowException:
        return None
    return run_id


def _tags(model: RegisteredModel) -> dict[str, str]:
    lineage = model.lineage
    tags = {
        "chattune.version": model.version,
        "chattune.job": model.job or "",
        "chattune.base_model": model.base_model or "",
    }
    for item in lineage.get("data", []):
        tags[f"chattune.data.{item['split']}.sha256"] = item["sha256"]
    for key, value in lineage.get("metrics", {}).items():
        tags[f"chattune.metric.{key}"] = str(value)
    return tags | {str(k): str(v) for k, v in model.tags.items()}
