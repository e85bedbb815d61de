"""The pipeline job spec: typed, validated, the YAML is just a serialized instance.

Parameter names follow the reference fine-tuning pipeline so its users feel at home.
Unknown keys are rejected with their path and line (``job.yaml:12: parameters.lerning_rate``).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticError

from chattune.errors import ValidationError
from chattune.jobs.spec_yaml import read_spec_text, strict_load
from chattune.train.params import EffectiveParams, TrainParams, effective_parameters

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)
MAX_EXPERIMENT_CHARS = 500
"""MLflow's limit on an experiment name (a longer one fails only when the job starts)."""


class DataSpec(BaseModel):
    """Chat data: jsonl/json/parquet/csv files or a local dataset folder in hub layout."""

    model_config = _STRICT
    train: str = Field(description="Training conversations (required)")
    test: str | None = Field(None, description="Held-out conversations for eval loss")
    validation: str | None = Field(None, description="Used for eval during training; else test")
    test_gen: str | None = Field(None, description="Prompts for generation metrics; else test")


class Settings(BaseModel):
    """Pipeline settings."""

    model_config = _STRICT
    force_rerun: bool = Field(False, description="Run every stage even when its cache matches")
    continue_on_step_failure: bool = Field(False, description="Run later stages after a failure")


class JobSpec(BaseModel):
    """A fine-tuning pipeline job (every key optional but ``model`` and ``data.train``)."""

    model_config = ConfigDict(**_STRICT, use_attribute_docstrings=True)
    name: str = Field(default_factory=lambda: f"job-{secrets.token_hex(4)}")
    """The job's name: 1-63 letters, digits, '-', '_' or '.' (generated when absent)."""
    experiment: str | None = None
    """MLflow experiment of the job's run (default ``chat_completion_<model name>``)."""
    description: str = ""
    """Free text kept with the job."""
    method: Literal["sft", "dpo"] = "sft"
    """``sft``: supervised fine-tuning on conversations; ``dpo``: preference tuning (DPO) on
    pairs of a chosen and a rejected answer (``beta``, ``loss_type``, ``max_prompt_length``)."""
    model: str
    """Base model: ``catalog-name[@label|:version]``, a local folder or ``hf://org/id``."""
    compute: str = "local"
    """Compute target the job runs on (``chattune compute list``)."""
    data: DataSpec
    """Chat data files by split (required: ``train``)."""
    parameters: TrainParams = Field(default_factory=TrainParams)
    """Fine-tuning parameters; the model card's ``model_specific_defaults`` fill the gaps."""
    settings: Settings = Field(default_factory=Settings)
    """Pipeline settings."""

    @model_validator(mode="after")
    def _names(self) -> JobSpec:
        if not re.fullmatch(r"[a-zA-Z0-9][-a-zA-Z0-9_.]{0,62}", self.name):
            raise ValueError(f"name {self.name!r} must be 1-63 letters, digits, '-', '_' or '.'")
        if self.experiment is None:
            self.experiment = f"chat_completion_{self.model.split('/')[-1].split('@')[0]}"
        if len(self.experiment) > MAX_EXPERIMENT_CHARS:
            raise ValueError(
                f"experiment has {len(self.experiment)} characters; MLflow takes at most "
                f"{MAX_EXPERIMENT_CHARS}"
            )
        return self


def resolve_parameters(spec: JobSpec) -> EffectiveParams:
    """The spec's parameters over the catalog model's ``model_specific_defaults``."""
    from chattune.catalog import sources

    card = sources.parse(spec.model).card
    return effective_parameters(spec.parameters, card.model_specific_defaults if card else {})


def effective_yaml(spec: JobSpec, effective: EffectiveParams) -> str:
    """The job as it runs: the spec with every parameter's effective value and its source.

    Loadable as a spec again (``jobs create -f``): the sources are YAML comments.
    """
    head = spec.model_dump(mode="json", exclude={"parameters"})
    lines = [yaml.safe_dump(head, sort_keys=False).rstrip(), "parameters:  # value  # source"]
    for name, entry in effective.table().items():
        value = yaml.safe_dump({name: entry["value"]}, default_flow_style=True, width=1000)
        lines.append(f"  {value.strip()[1:-1]}  # {entry['source']}")
    return "\n".join(lines) + "\n"


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> JobSpec:
    """Parse and validate a job spec YAML; errors name the file, line and key path."""
    path = Path(path)
    text = read_spec_text(path)
    raw = strict_load(text, str(path))
    if not isinstance(raw, dict):
        raise ValidationError(f"{path}: expected a mapping of keys", "see examples/job.yaml")
    raw.update(overrides or {})
    return parse_spec(raw, source=str(path), text=text)


def parse_spec(raw: dict[str, Any], source: str = "spec", text: str | None = None) -> JobSpec:
    """Validate a spec mapping; all problems are reported at once, each with its key path."""
    try:
        return JobSpec.model_validate(raw)
    except PydanticError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            line = _line_of(text, err["loc"]) if text else None
            where = f"{source}:{line}" if line else source
            problems.append(f"{where}: {loc or '(top)'}: {_message(err)}")
        raise ValidationError(
            "; ".join(problems),
            "fix the keys named above (parameter names: `chattune jobs create --help`)",
        ) from None


def _message(err: Any) -> str:
    """pydantic's message, worded for a spec author (the key is named by the caller)."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "finite_number":
        return f"must be a finite number, got {err['input']}"
    return str(err["msg"]).removeprefix("Value error, ")


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the key at ``loc`` in the YAML text, for error messages."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == str(key):
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return line
