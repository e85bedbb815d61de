"""``ml_client.models`` and ``ml_client.components``: the catalog (a registry client) and the
registered models (a workspace client) over ``client.models``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from chattune.azureml.constants import AssetTypes
from chattune.azureml.entities import Model
from chattune.azureml.pipelines import OUTPUTS, Component, get_component
from chattune.errors import ValidationError

if TYPE_CHECKING:
    from chattune.client import Client

_JOB_OUTPUT = re.compile(r"azureml://jobs/([^/]+)/outputs/([^/]+)")


def string_tags(tags: dict[str, Any]) -> dict[str, str]:
    """Tag values as the platform stores them: text, lists and dicts as Python literals
    (the notebook reads them back with ``ast.literal_eval``)."""
    return {k: v if isinstance(v, str) else repr(v) for k, v in tags.items()}


class ModelOperations:
    """``get`` and ``list``: catalog cards for a registry client, registered versions for a
    workspace client; ``create_or_update`` registers a job's output."""

    def __init__(self, client: Client, registry: bool) -> None:
        self._client, self._registry = client, registry

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        if self._registry:
            card = self._client.models.get(name, label=label, version=version)
            return Model(
                path=card.source,
                type=AssetTypes.MLFLOW_MODEL,
                name=card.name,
                version=card.version,
                description=card.description,
                tags=string_tags(card.tags),
                id=card.id,
            )
        return _registered(self._client.models.show(name, version=version, label=label))

    def list(self, name: str | None = None) -> list[Model]:
        if self._registry:
            return [self.get(c.name) for c in self._client.models.catalog()]
        return [_registered(m) for m in self._client.models.list(name)]

    def create_or_update(self, model: Model) -> Model:
        """Register ``azureml://jobs/<job>/outputs/<output>`` (an MLflow model) as
        ``name:version``. The local pipeline has one model output: every output name but
        ``pytorch_model_folder`` is its MLflow model folder."""
        found = _JOB_OUTPUT.fullmatch(model.path or "")
        if not found:
            raise ValidationError(
                f"Model.path {model.path!r}: expected azureml://jobs/<job>/outputs/<output>",
                "register a pipeline job's output (local files: `chattune models register`)",
            )
        if model.type != AssetTypes.MLFLOW_MODEL or found.group(2) == OUTPUTS[1]:
            raise ValidationError(
                f"Model type {model.type!r} from output {found.group(2)!r}: only the job's "
                "MLflow model is registered",
                "use type=AssetTypes.MLFLOW_MODEL and the pipeline's trained_model output",
            )
        if self._registry or not model.name:
            raise ValidationError(
                "Model: register with a workspace client and a name", "set Model(name=...)"
            )
        registered = self._client.models.register(
            job=found.group(1),
            name=model.name,
            version=model.version,
            description=model.description or "",
            tags={k: str(v) for k, v in model.tags.items()},
        )
        return _registered(registered)


class ComponentOperations:
    """``components.get(name="chat_completion_pipeline", label="latest")``."""

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Component:
        return get_component(name)


def _registered(model: Any) -> Model:
    return Model(
        path=model.path,
        type=AssetTypes.MLFLOW_MODEL,
        name=model.name,
        version=model.version,
        description=model.description,
        tags=dict(model.tags),
        properties={"job": model.job or "", "base_model": model.base_model or ""},
        id=model.id,
    )
