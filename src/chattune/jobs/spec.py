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

from chattune.errors import NotFoundError, ValidationError

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(BaseModel):
    """Chat data: jsonl/json/parquet/csv files or a local dataset folder in hub layout."""

    model_config = _STRICT
    train: str = Field(description="Training conversations (required)")
    test: str | None = Field(None, description="Held-out conversations for eval loss")
    validation: str | None = Field(None, description="Used for eval during training; else test")


class TrainParams(BaseModel):
    """Fine-tuning parameters; a catalog model's ``model_specific_defaults`` fill the gaps."""

    model_config = _STRICT
    num_train_epochs: float = Field(1, gt=0)
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: epochs)")
    per_device_train_batch_size: int = Field(1, ge=1)
    per_device_eval_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
    ] = "linear"
    warmup_steps: int = Field(0, ge=0)
    optim: Literal["adamw_torch", "adafactor"] = "adamw_torch"
    weight_decay: float = Field(0.0, ge=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    max_grad_norm: float = Field(1.0, ge=0)
    precision: Literal["32", "16", "bf16"] = "32"
    seed: int = 42
    max_seq_length: int = Field(-1, description="Truncate to this many tokens (-1: model max)")
    evaluation_strategy: Literal["epoch", "steps", "no"] = "epoch"
    eval_steps: int | None = Field(None, ge=1)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1)
    save_total_limit: int = Field(-1, description="Checkpoints kept (-1: all)")
    packing: bool = True
    metric_for_best_model: str = "loss"
    apply_early_stopping: bool = False
    early_stopping_patience: int = Field(1, ge=1)
    early_stopping_threshold: float = Field(0.0, ge=0)
    resume_from_checkpoint: bool | str = False
    apply_lora: bool = True
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(128, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_target_modules: list[str] | None = Field(None, description="None: every linear layer")
    merge_lora_weights: bool = True
    apply_deepspeed: bool = False
    deepspeed_stage: Literal[2, 3] = 2
    number_of_gpu_to_use_finetuning: int | None = Field(None, ge=1)
    num_nodes_finetune: int = Field(1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _precision_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("precision"), int):
            data = {**data, "precision": str(data["precision"])}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        if self.evaluation_strategy == "steps" and self.eval_steps is None:
            raise ValueError("evaluation_strategy 'steps' needs eval_steps")
        if self.apply_early_stopping and self.evaluation_strategy == "no":
            raise ValueError("apply_early_stopping needs evaluation_strategy epoch or steps")
        return self


class Settings(BaseModel):
    """Pipeline settings."""

    model_config = _STRICT
    force_rerun: bool = Field(False, description="Run every stage even when its cache matches")
    continue_on_step_failure: bool = Field(False, description="Run later stages after a failure")


class JobSpec(BaseModel):
    """A fine-tuning pipeline job (every key optional but ``model`` and ``data.train``)."""

    model_config = _STRICT
    name: str = Field(default_factory=lambda: f"job-{secrets.token_hex(4)}")
    experiment: str | None = None
    description: str = ""
    model: str
    compute: str = "local"
    data: DataSpec
    parameters: TrainParams = Field(default_factory=TrainParams)
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _names(self) -> JobSpec:
        if not re.fullmatch(r"[a-zA-Z0-9][-a-zA-Z0-9_.]{0,62}", self.name):
            raise ValueError(f"name {self.name!r} must be 1-63 letters, digits, '-', '_' or '.'")
        if self.experiment is None:
            self.experiment = f"chat_completion_{self.model.split('/')[-1].split('@')[0]}"
        return self


def spec_json(spec: JobSpec) -> str:
    """The spec as stored: only what the user set (so model defaults still apply), plus names."""
    import json

    data = spec.model_dump(mode="json", exclude_unset=True)
    data |= {"name": spec.name, "experiment": spec.experiment}
    return json.dumps(data, sort_keys=True)


def effective_parameters(params: TrainParams, model_defaults: dict[str, Any]) -> TrainParams:
    """Spec values win; the model's ``model_specific_defaults`` fill what the spec left out."""
    return TrainParams.model_validate({**model_defaults, **params.model_dump(exclude_unset=True)})


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> JobSpec:
    """Parse and validate a job spec YAML; errors name the file, line and key path."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"job spec {path} not found", "pass the path of a job YAML with -f")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ValidationError(
            f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})", "fix the YAML syntax"
        ) from exc
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
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {loc or '(top)'}: {msg}")
        raise ValidationError(
            "; ".join(problems),
            "fix the keys named above (parameter names: `chattune jobs create --help`)",
        ) from None


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
