"""The registry's ``chat_completion_pipeline`` component, as a local pipeline job: its
keyword arguments map to one chattune job spec (model, compute, data, parameters).

=====================================  ==============================================
component argument                     chattune job spec
=====================================  ==============================================
``mlflow_model_path`` (a model ``id``)  ``model``
``compute_model_import`` ... (4)        ``compute`` (all four name the same target)
``train/validation/test_file_path``     ``data.train/validation/test`` (absolute paths)
``number_of_gpu_to_use_finetuning``     the same parameter; ``0`` (a CPU size) is unset
every other fine-tuning argument        ``parameters.<name>`` ("true"/"false" are bools)
``evaluation_config``                   accepted, no local meaning
=====================================  ==============================================
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chattune.azureml.entities import Input, Model, PipelineJob
from chattune.errors import NotFoundError, ValidationError

COMPONENT = "chat_completion_pipeline"
COMPUTE_ARGS = (
    "compute_model_import",
    "compute_preprocess",
    "compute_finetune",
    "compute_model_evaluation",
)
DATA_ARGS = {
    "train_file_path": "train",
    "validation_file_path": "validation",
    "test_file_path": "test",
}
MODEL_ARGS = ("mlflow_model_path", "pytorch_model_path")
NO_LOCAL_MEANING = ("evaluation_config",)
OUTPUTS = ("mlflow_model_folder", "pytorch_model_folder")
_REGISTRY_ID = re.compile(r"azureml://registries/[^/]+/models/([^/]+)/(versions|labels)/([^/]+)")
_steps: list[list[PipelineStep]] = []


@dataclass(frozen=True)
class OutputRef:
    """``step.outputs.<name>``: an output of the fine-tuning step."""

    name: str


class _Outputs:
    def __getattr__(self, name: str) -> OutputRef:
        if name not in OUTPUTS:
            raise AttributeError(f"{COMPONENT} has no output {name!r} (outputs: {OUTPUTS})")
        return OutputRef(name)


@dataclass
class PipelineStep:
    """One call of the component: its arguments, checked when the job is submitted."""

    component: str
    kwargs: dict[str, Any]
    outputs: _Outputs = field(default_factory=_Outputs)


class Component:
    """``components.get(name="chat_completion_pipeline")``: call it with the component's
    arguments inside a ``@pipeline`` function."""

    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version

    def __call__(self, **kwargs: Any) -> PipelineStep:
        step = PipelineStep(self.name, kwargs)
        if _steps:
            _steps[-1].append(step)
        return step


def get_component(name: str) -> Component:
    """The one component the local pipeline runs; any other name is an error naming it."""
    if name != COMPONENT:
        raise NotFoundError(
            f"component {name!r} is not available locally", f"use name={COMPONENT!r}"
        )
    return Component(name, "1")


@contextlib.contextmanager
def recording() -> Iterator[list[PipelineStep]]:
    """Collect the steps a ``@pipeline`` function creates."""
    _steps.append([])
    try:
        yield _steps[-1]
    finally:
        _steps.pop()


def model_ref(value: Any) -> str:
    """A model ``id`` as chattune's reference: ``NAME:VERSION`` (also the platform's
    ``azureml://registries/R/models/NAME/versions/V`` and ``azureml:NAME:V`` forms)."""
    if isinstance(value, Model):
        value = value.id or f"{value.name}:{value.version}"
    if isinstance(value, Input):
        value = value.path
    text = str(value)
    found = _REGISTRY_ID.fullmatch(text)
    if found:
        name, kind, which = found.groups()
        return f"{name}:{which}" if kind == "versions" else f"{name}@{which}"
    return text.removeprefix("azureml:")


def job_spec(job: PipelineJob, known: set[str]) -> dict[str, Any]:
    """The chattune job spec (a mapping) of a pipeline job; ``known``: the parameter names."""
    args = dict(job.step.kwargs)
    models = [args.pop(k) for k in MODEL_ARGS if k in args]
    if len(models) != 1:
        raise ValidationError(
            f"{COMPONENT}: give exactly one of {', '.join(MODEL_ARGS)}",
            "pass mlflow_model_path=foundation_model.id",
        )
    computes = {str(args.pop(k)) for k in COMPUTE_ARGS if k in args}
    computes = computes or {job.settings.default_compute or "local"}
    if len(computes) > 1:
        raise ValidationError(
            f"{COMPUTE_ARGS[0]}...: steps on different computes {sorted(computes)}",
            "the local pipeline runs on one compute target: give every compute_* the same name",
        )
    data = {split: _path(arg, args.pop(arg)) for arg, split in DATA_ARGS.items() if arg in args}
    if "train" not in data:
        raise ValidationError(f"{COMPONENT}: train_file_path is required", "pass Input(path=...)")
    for name in NO_LOCAL_MEANING:
        args.pop(name, None)
    parameters = {k: _value(v) for k, v in args.items()}
    if parameters.get("number_of_gpu_to_use_finetuning") in (0, "0"):
        del parameters["number_of_gpu_to_use_finetuning"]  # a CPU size has 0 GPUs: train on CPU
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValidationError(
            f"{COMPONENT}: argument(s) {', '.join(unknown)} not known to the local pipeline",
            "see `chattune jobs create --help` for the fine-tuning parameters it takes",
        )
    display = job.display_name + (f"\n{job.description}" if job.description else "")
    spec: dict[str, Any] = {
        "model": model_ref(models[0]),
        "compute": computes.pop(),
        "data": data,
        "parameters": parameters,
        "description": display,
        "settings": {
            "force_rerun": bool(job.settings.force_rerun),
            "continue_on_step_failure": bool(job.settings.continue_on_step_failure),
        },
    }
    return spec | ({"name": job.name} if job.name else {})


def _path(arg: str, value: Any) -> str:
    """A data input as an absolute path (the job process may run elsewhere)."""
    path = value.path if isinstance(value, Input) else value
    if not isinstance(path, str | Path) or str(path).startswith(("azureml:", "http")):
        raise ValidationError(
            f"{arg}: {path!r} is not a local file", "pass Input(type='uri_file', path='./x.jsonl')"
        )
    return str(Path(path).expanduser().resolve())


def _value(value: Any) -> Any:
    """A component argument as a job parameter: the platform passes every one as text."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered.startswith("["):
            with contextlib.suppress(ValueError, SyntaxError):
                return ast.literal_eval(value)
    return value


def display_name(description: str) -> str:
    """The display name a job's description carries (its first line)."""
    return description.split("\n", 1)[0]
