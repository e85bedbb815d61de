"""``azure.ai.ml.dsl``: ``@pipeline`` turns a function that calls the fine-tuning component
into a :class:`~chattune.azureml.entities.PipelineJob`.

>>> @pipeline(name="a display name that may be longer than a job name may be, 63 characters")
... def create_pipeline():
...     step = component(mlflow_model_path=..., train_file_path=Input(path="train.jsonl"))
...     return {"trained_model": step.outputs.mlflow_model_folder}
>>> job = create_pipeline()
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chattune.azureml.entities import PipelineJob, PipelineJobSettings
from chattune.azureml.pipelines import PipelineStep, recording
from chattune.errors import ValidationError


def pipeline(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    experiment_name: str | None = None,
    default_compute: str | None = None,
    **kwargs: Any,
) -> Any:
    """Decorate a pipeline function; calling it builds the job. ``name`` (the notebook's
    long display name) becomes the job's display name; its name is generated."""

    def decorate(body: Callable[..., Any]) -> Callable[..., PipelineJob]:
        @functools.wraps(body)
        def build(*args: Any, **call_kwargs: Any) -> PipelineJob:
            with recording() as steps:
                returned = body(*args, **call_kwargs) or {}
            if len(steps) != 1:
                raise ValidationError(
                    f"pipeline {body.__name__}: {len(steps)} component steps; the local "
                    "pipeline runs exactly one",
                    "call the chat_completion_pipeline component once inside the function",
                )
            return PipelineJob(
                display_name=display_name or name or body.__name__,
                step=steps[0],
                outputs=dict(returned),
                settings=PipelineJobSettings(default_compute=default_compute),
                description=description,
                experiment_name=experiment_name,
            )

        return build

    return decorate(func) if func is not None else decorate


__all__ = ["PipelineStep", "pipeline"]
