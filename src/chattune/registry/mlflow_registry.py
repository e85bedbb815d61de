"""Each chattune model version mirrored as an MLflow registered model version.

MLflow numbers versions itself (1, 2, ...); the chattune version is the tag
``chattune.version`` (with ``chattune.registered_at``, which registration of it). chattune's
store row is the source of truth; :meth:`MlflowRegistry.ensure_version` and
:meth:`MlflowRegistry.remove_version` make MLflow follow it and are safe to repeat.
Labels are MLflow aliases, except ``latest``, which MLflow reserves and resolves to the
highest version on its own (``models:/NAME@latest``) — the newest registration, as in
chattune. Calls hold the workspace's MLflow lock: MLflow's SQLite
store allocates version numbers without one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from chattune.registry.lineage import Lineage
from chattune.store.models import RegisteredModel
from chattune.train import faults
from chattune.workspace import Workspace, file_lock

_RESERVED = "latest"
_VERSION = "chattune.version"  # chattune's version (MLflow numbers its own 1, 2, ...)
_STAMP = "chattune.registered_at"


class MlflowRegistry:
    """The workspace's MLflow model registry (same store as its runs)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def ensure_version(self, model: RegisteredModel, run_id: str | None) -> str:
        """The MLflow version of ``model``, made if missing; its number. Idempotent.

        Found by its tags ``chattune.version`` and ``chattune.registered_at`` (MLflow numbers
        versions itself); a version tagged with the same chattune version but another
        registration (left by an older delete) is removed. Safe to repeat after any crash.
        """
        from mlflow.exceptions import MlflowException

        with self._client() as client:
            with contextlib.suppress(MlflowException):  # exists already
                client.create_registered_model(model.name)
            mine = _versions_of(client, model.name, model.version)
            current = [str(v.version) for v in mine if v.tags.get(_STAMP) == stamp(model)]
            for stale in mine:
                if str(stale.version) not in current[:1]:
                    client.delete_model_version(model.name, stale.version)
            if current:
                number = current[0]
            else:
                number = str(
                    client.create_model_version(
                        model.name,
                        source=model.path,
                        run_id=_existing_run(client, run_id),
                        tags=_tags(model),
                        description=model.description or None,
                    ).version
                )
                faults.hit("register:mlflow_created")
            for label in model.labels:
                if label != _RESERVED:
                    client.set_registered_model_alias(model.name, label, number)
            return number

    def remove_version(self, name: str, version: str) -> None:
        """Delete every MLflow version of chattune's ``name:version``; none is fine."""
        from mlflow.exceptions import MlflowException

        with self._client() as client:
            try:
                found = _versions_of(client, name, version)
            except MlflowException:  # no registered model of that name
                return
            for mv in found:
                client.delete_model_version(name, mv.version)

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

    @contextlib.contextmanager
    def _client(self) -> Any:
        import mlflow

        with file_lock(self.ws.root / ".mlflow.lock"):
            yield mlflow.MlflowClient(
                tracking_uri=self.ws.mlflow_connect_uri, registry_uri=self.ws.mlflow_connect_uri
            )


def stamp(model: RegisteredModel) -> str:
    """Which registration of ``name:version`` an MLflow version mirrors."""
    return f"{model.created_at:.6f}"


def _versions_of(client: Any, name: str, version: str) -> list[Any]:
    found = client.search_model_versions(f"name='{name}'")
    return sorted(
        (v for v in found if v.tags.get(_VERSION) == version), key=lambda v: int(v.version)
    )


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
    lineage = Lineage.model_validate(model.lineage)
    tags = {
        _VERSION: model.version,
        _STAMP: stamp(model),
        "chattune.job": model.job or "",
        "chattune.base_model": model.base_model or "",
    }
    for item in lineage.files():
        tags[f"chattune.data.{item.split}.sha256"] = item.sha256
    for key, value in lineage.metrics.items():
        tags[f"chattune.metric.{key}"] = str(value)
    return tags | {str(k): str(v) for k, v in model.tags.items()}
