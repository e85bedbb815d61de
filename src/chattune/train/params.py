"""Fine-tuning parameters: the names users of the reference pipeline know, typed and checked.

A catalog model's ``model_specific_defaults`` fill what the spec leaves out;
:func:`effective_parameters` says, for each parameter, which of the three it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

SPEC, MODEL_CARD, DEFAULT = "spec", "model card", "default"


INT32_MAX = 2**31 - 1  # step and size counts: what torch and the Trainer hold as int
SEED_MAX = 2**32 - 1  # numpy's seed limit (the Trainer seeds numpy too)
MAX_SEQ_LENGTH = 1 << 20
BestModelMetric = Literal["loss", "perplexity", "token_accuracy"]
"""What the training evaluation reports (``eval_<name>``): ``metric_for_best_model`` choices."""
BEST_MODEL_METRICS: tuple[str, ...] = get_args(BestModelMetric)


def _int_from_text(value: Any) -> Any:
    """YAML 1.1 reads ``1e20`` as text; an integral number in any notation is an int here."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _ints(lo: int, hi: int = INT32_MAX, unset: int | None = None, means: str = "") -> Any:
    """An int in ``lo..hi`` (or exactly ``unset``, which ``means`` something else)."""

    def check(value: int) -> int:
        if value == unset or lo <= value <= hi:
            return value
        allowed = f"{lo} to {hi}" if unset is None else f"{unset} ({means}) or {lo} to {hi}"
        raise ValueError(f"{value} is out of range: allowed {allowed}")

    return Annotated[int, BeforeValidator(_int_from_text), AfterValidator(check)]


def _floats(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A finite float in the interval; the error states the interval."""

    def check(value: float) -> float:
        above = value > lo if lo_open else value >= lo
        below = value < hi if hi_open else value <= hi
        if above and below:
            return value
        low = f"{'>' if lo_open else '>='} {lo:g}"
        high = "" if hi == math.inf else f" and {'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"{value:g} is out of range: allowed {low}{high}")

    return Annotated[float, AfterValidator(check)]


Count = _ints(1)
Positive = _floats(0, lo_open=True)
NonNegative = _floats(0)
Fraction = _floats(0, 1, hi_open=True)


class TrainParams(BaseModel):
    """Fine-tuning parameters; a catalog model's ``model_specific_defaults`` fill the gaps.

    Every number has a range (finite floats, integer limits), checked when the spec is read,
    so a mistyped value is refused before anything runs, naming the key and what is allowed.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    num_train_epochs: _floats(0, 1e6, lo_open=True) = 1  # type: ignore[valid-type]
    max_steps: _ints(1, unset=-1, means="use num_train_epochs") = Field(  # type: ignore[valid-type]
        -1, description="Stop after this many optimizer steps (-1: epochs)"
    )
    per_device_train_batch_size: Count = 1
    per_device_eval_batch_size: Count = 1
    gradient_accumulation_steps: Count = 1
    learning_rate: Positive = 2e-5
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
    ] = "linear"
    warmup_steps: _ints(0) = 0  # type: ignore[valid-type]
    optim: Literal["adamw_torch", "adafactor"] = "adamw_torch"
    weight_decay: NonNegative = 0.0
    adam_beta1: Fraction = 0.9
    adam_beta2: Fraction = 0.999
    adam_epsilon: Positive = 1e-8
    max_grad_norm: NonNegative = 1.0
    precision: Literal["32", "16", "bf16"] = "32"
    seed: _ints(0, SEED_MAX) = 42  # type: ignore[valid-type]
    max_seq_length: _ints(8, MAX_SEQ_LENGTH, unset=-1, means="the model's maximum") = Field(  # type: ignore[valid-type]
        -1, description="Truncate to this many tokens (-1: model max)"
    )
    evaluation_strategy: Literal["epoch", "steps", "no"] = "epoch"
    eval_steps: Count | None = None
    logging_steps: Count = 10
    save_steps: Count = 500
    save_total_limit: _ints(1, unset=-1, means="keep all") = Field(  # type: ignore[valid-type]
        -1, description="Checkpoints kept (-1: all)"
    )
    packing: bool = True
    metric_for_best_model: BestModelMetric = Field(
        "loss", description="Training-eval metric that picks the best checkpoint"
    )
    apply_early_stopping: bool = False
    early_stopping_patience: Count = 1
    early_stopping_threshold: NonNegative = 0.0
    resume_from_checkpoint: bool | str = False
    apply_lora: bool = True
    lora_r: Count = 8
    lora_alpha: Count = 128
    lora_dropout: Fraction = 0.0
    lora_target_modules: list[str] | None = Field(None, description="None: every linear layer")
    merge_lora_weights: bool = True
    apply_deepspeed: bool = Field(
        False,
        description="Train through DeepSpeed ZeRO (the Trainer's integration; pip extra "
        "`chattune[deepspeed]`). On a GPU machine with NCCL; on CPU with `processes: N` "
        "(DeepSpeed's CPU accelerator over gloo).",
    )
    deepspeed_stage: Literal[2, 3] = Field(
        2,
        description="ZeRO stage: 2 shards optimizer state and gradients; 3 also the weights "
        "(checkpoints and the final model are gathered to whole 16-bit weights on save)",
    )
    fsdp: bool = Field(
        False,
        description="Shard the model over the processes with PyTorch FSDP (accelerate's "
        "integration, the name accelerate and LLaMA-Factory use); gloo on CPU, NCCL on GPUs. "
        "Not with apply_deepspeed.",
    )
    fsdp_sharding: Literal["full_shard", "shard_grad_op"] = Field(
        "full_shard",
        description="What FSDP shards: full_shard (weights, gradients, optimizer state; "
        "ZeRO-3-like) or shard_grad_op (gradients and optimizer state; ZeRO-2-like)",
    )
    number_of_gpu_to_use_finetuning: Count | None = None
    num_nodes_finetune: Count = 1
    processes: Count | None = Field(
        None,
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
        if self.fsdp and self.apply_deepspeed:
            raise ValueError("fsdp and apply_deepspeed are two ways to shard: choose one")
        return self

    @property
    def sharded_weights(self) -> bool:
        """The weights are split over the processes (ZeRO-3, FSDP full_shard): saving the
        final model gathers them first."""
        zero3 = self.apply_deepspeed and self.deepspeed_stage == 3
        return zero3 or (self.fsdp and self.fsdp_sharding == "full_shard")


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
