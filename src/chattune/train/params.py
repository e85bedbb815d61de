"""Fine-tuning parameters: the names users of the reference pipeline know, typed and checked.

A catalog model's ``model_specific_defaults`` fill what the spec leaves out;
:func:`effective_parameters` says, for each parameter, which of the three it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SPEC, MODEL_CARD, DEFAULT = "spec", "model card", "default"


class TrainParams(BaseModel):
    """Fine-tuning parameters; a catalog model's ``model_specific_defaults`` fill the gaps."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
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
    processes: int | None = Field(
        None,
        ge=1,
        description="Training processes per node (torchrun); default one per GPU asked for "
        "(number_of_gpu_to_use_finetuning), else 1. On CPU they use the gloo backend.",
    )
    rendezvous_endpoint: str | None = Field(
        None, description="host:port of node 0, needed when num_nodes_finetune > 1"
    )
    generation_eval_rows: int = Field(16, ge=0, le=1024, description="test_gen prompts (0: none)")
    generation_max_new_tokens: int = Field(64, ge=1, le=4096, description="Per generated answer")

    @property
    def world(self) -> tuple[int, int]:
        """(processes per node, nodes) the finetune stage launches."""
        return self.processes or self.number_of_gpu_to_use_finetuning or 1, self.num_nodes_finetune

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


@dataclass(frozen=True)
class EffectiveParams:
    """The parameters a job really trains with, and where each value came from."""

    params: TrainParams
    sources: dict[str, str]
    """``{name: "spec" | "model card" | "default"}``."""

    def table(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value": v, "source": s}}`` in field order (what jobs record)."""
        values = self.params.model_dump(mode="json")
        return {k: {"value": values[k], "source": self.sources[k]} for k in values}


def effective_parameters(params: TrainParams, model_defaults: dict[str, Any]) -> EffectiveParams:
    """Spec values win; the model's ``model_specific_defaults`` fill what the spec left out.

    >>> eff = effective_parameters(TrainParams(lora_r=4), {"learning_rate": 2e-4})
    >>> eff.params.learning_rate, eff.sources["learning_rate"], eff.sources["lora_r"]
    (0.0002, 'model card', 'spec')
    """
    given = params.model_dump(exclude_unset=True)
    merged = TrainParams.model_validate({**model_defaults, **given})
    sources = {
        name: SPEC if name in given else MODEL_CARD if name in model_defaults else DEFAULT
        for name in TrainParams.model_fields
    }
    return EffectiveParams(merged, sources)
