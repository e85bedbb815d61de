"""Fine-tuning parameters: the names users of the reference pipeline know, typed and checked.

A catalog model's ``model_specific_defaults`` fill what the spec leaves out;
:func:`effective_parameters` says, for each parameter, which of the three it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, model_validator
from pydantic_core import core_schema

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


@dataclass(frozen=True)
class IntRange:
    """``Annotated`` metadata: an int in ``lo..hi``, or exactly ``unset`` (which ``means``
    something else). Integral text or floats (``1e20``) are read as ints first."""

    lo: int
    hi: int = INT32_MAX
    unset: int | None = None
    means: str = ""

    @property
    def allowed(self) -> str:
        """What errors and the parameter reference say is allowed."""
        span = f"{self.lo} to {self.hi}"
        return span if self.unset is None else f"{self.unset} ({self.means}) or {span}"

    def check(self, value: int) -> int:
        if value == self.unset or self.lo <= value <= self.hi:
            return value
        raise ValueError(f"{value} is out of range: allowed {self.allowed}")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        checked = core_schema.no_info_after_validator_function(self.check, handler(source))
        return core_schema.no_info_before_validator_function(_int_from_text, checked)


@dataclass(frozen=True)
class FloatRange:
    """``Annotated`` metadata: a finite float in the interval; the error states the interval."""

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    @property
    def allowed(self) -> str:
        """What errors and the parameter reference say is allowed."""
        low = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        high = f" and {'<' if self.hi_open else '<='} {self.hi:g}"
        return low if self.hi == math.inf else low + high

    def check(self, value: float) -> float:
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        if above and below:
            return value
        raise ValueError(f"{value:g} is out of range: allowed {self.allowed}")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(self.check, handler(source))


Count: TypeAlias = Annotated[int, IntRange(1)]
Positive: TypeAlias = Annotated[float, FloatRange(0, lo_open=True)]
NonNegative: TypeAlias = Annotated[float, FloatRange(0)]
Fraction: TypeAlias = Annotated[float, FloatRange(0, 1, hi_open=True)]
SchedulerType = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
]


class TrainParams(BaseModel):
    """Fine-tuning parameters; a catalog model's ``model_specific_defaults`` fill the gaps.

    Every number has a range (finite floats, integer limits), checked when the spec is read,
    so a mistyped value is refused before anything runs, naming the key and what is allowed.
    Each field's docstring is its description (the parameter reference, the studio's form).
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )
    num_train_epochs: Annotated[float, FloatRange(0, 1e6, lo_open=True)] = 1
    """Passes over the training data (fractions allowed); ignored when ``max_steps`` is set."""
    max_steps: Annotated[int, IntRange(1, unset=-1, means="use num_train_epochs")] = -1
    """Stop after this many optimizer steps (-1: train for ``num_train_epochs``)."""
    per_device_train_batch_size: Count = 1
    """Training rows per step in each process (a packed row holds several conversations)."""
    per_device_eval_batch_size: Count = 1
    """Rows per forward pass when evaluating, in each process."""
    gradient_accumulation_steps: Count = 1
    """Batches whose gradients are summed before one optimizer step."""
    learning_rate: Positive = 2e-5
    """Peak learning rate of the optimizer (reached after ``warmup_steps``)."""
    lr_scheduler_type: SchedulerType = "linear"
    """How the learning rate changes over training after warm-up (transformers' schedulers)."""
    warmup_steps: Annotated[int, IntRange(0)] = 0
    """Optimizer steps over which the learning rate rises linearly from 0."""
    optim: Literal["adamw_torch", "adafactor"] = "adamw_torch"
    """Optimizer: AdamW (two moments per weight) or Adafactor (factored, less memory)."""
    weight_decay: NonNegative = 0.0
    """Decoupled weight decay of the optimizer (0: none)."""
    adam_beta1: Fraction = 0.9
    """AdamW's decay rate of the first moment (mean of the gradients)."""
    adam_beta2: Fraction = 0.999
    """AdamW's decay rate of the second moment (mean of the squared gradients)."""
    adam_epsilon: Positive = 1e-8
    """AdamW's term added to the denominator for numerical stability."""
    max_grad_norm: NonNegative = 1.0
    """Clip the gradients' global norm to this value (0: no clipping)."""
    precision: Literal["32", "16", "bf16"] = "32"
    """Training precision: ``32`` (float32), ``bf16`` (on a CPU too: bf16 base weights under
    LoRA, else autocast) or ``16`` (fp16 with a loss scaler; needs a GPU)."""
    seed: Annotated[int, IntRange(0, SEED_MAX)] = 42
    """Seed of Python, numpy and torch: the same seed and data give the same run."""
    max_seq_length: Annotated[
        int, IntRange(8, MAX_SEQ_LENGTH, unset=-1, means="the model's maximum")
    ] = -1
    """Truncate each conversation to this many tokens (-1: the model's maximum context)."""
    evaluation_strategy: Literal["epoch", "steps", "no"] = "epoch"
    """When the training evaluation runs on the validation split (else test): after each
    epoch, every ``eval_steps`` steps, or never."""
    eval_steps: Count | None = None
    """Optimizer steps between evaluations; needed by ``evaluation_strategy: steps``."""
    logging_steps: Count = 10
    """Optimizer steps between the training metrics logged to MLflow (and the first step)."""
    save_steps: Count = 500
    """Optimizer steps between checkpoints (what ``jobs resume`` continues from)."""
    save_total_limit: Annotated[int, IntRange(1, unset=-1, means="keep all")] = -1
    """Newest checkpoints kept; older ones are deleted (-1: keep all)."""
    packing: bool = True
    """Pack several conversations into each row (block-diagonal attention: they never see one
    another) instead of one padded conversation per row."""
    metric_for_best_model: BestModelMetric = "loss"
    """Training-evaluation metric that picks the best checkpoint, kept and loaded at the end
    (``perplexity`` ranks like ``loss``; higher ``token_accuracy`` is better)."""
    apply_early_stopping: bool = False
    """Stop training when ``metric_for_best_model`` stops improving (needs evaluation)."""
    early_stopping_patience: Count = 1
    """Evaluations without improvement before early stopping ends training."""
    early_stopping_threshold: NonNegative = 0.0
    """Smallest change of the metric that counts as an improvement for early stopping."""
    resume_from_checkpoint: bool | str = False
    """``true``: continue from the job's newest complete checkpoint (from step 0 if there is
    none); a path: continue from that checkpoint folder."""
    apply_lora: bool = True
    """Train LoRA adapters (PEFT) on a frozen base model; ``false``: full fine-tuning."""
    lora_r: Count = 8
    """Rank of each LoRA adapter's two matrices."""
    lora_alpha: Count = 128
    """LoRA scaling: the adapters' update is multiplied by ``lora_alpha / lora_r``."""
    lora_dropout: Fraction = 0.0
    """Dropout on the LoRA adapters' input during training."""
    lora_target_modules: list[str] | None = None
    """Names of the linear layers that get adapters, e.g. ``[q_proj, v_proj]`` (unset: every
    linear layer but the output head)."""
    merge_lora_weights: bool = True
    """Package the model with the adapters merged into the base weights; ``false``: keep the
    PEFT adapter (``models export --format adapter``), plus the merged weights serving loads."""
    apply_deepspeed: bool = False
    """Train through DeepSpeed ZeRO at ``deepspeed_stage`` (the Trainer's integration; extra
    ``chattune[deepspeed]``): NCCL on GPUs, gloo on CPU with ``processes: N``."""
    deepspeed_stage: Literal[2, 3] = 2
    """ZeRO stage: 2 shards optimizer state and gradients; 3 also the weights (checkpoints
    and the final model are gathered to whole 16-bit weights on save)."""
    fsdp: bool = False
    """Shard the model over the processes with PyTorch FSDP (accelerate's integration, the
    name accelerate and LLaMA-Factory use); not with ``apply_deepspeed``. Needs CUDA GPUs:
    accelerate builds FSDP on GPUs only, so validate refuses it on a CPU (shard there with
    ``apply_deepspeed``)."""
    fsdp_sharding: Literal["full_shard", "shard_grad_op"] = "full_shard"
    """What FSDP shards: ``full_shard`` (weights, gradients and optimizer state; ZeRO-3-like)
    or ``shard_grad_op`` (gradients and optimizer state; ZeRO-2-like)."""
    number_of_gpu_to_use_finetuning: Count | None = None
    """GPUs per node for the finetune stage (one training process each, through torchrun)."""
    num_nodes_finetune: Count = 1
    """Nodes the finetune stage runs on; more than 1 needs ``rendezvous_endpoint``."""
    processes: Count | None = None
    """Training processes per node (torchrun); default one per GPU asked for
    (``number_of_gpu_to_use_finetuning``), else 1. On CPU they use the gloo backend."""
    rendezvous_endpoint: str | None = None
    """``host:port`` of node 0, needed when ``num_nodes_finetune`` > 1."""
    beta: Positive = 0.1
    """``method: dpo``: how far the tuned model may move from the reference (higher: closer
    to it); for ``loss_type: ipo`` the regularization τ."""
    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    """``method: dpo``: ``sigmoid`` (DPO's loss) or ``ipo`` (squared, per-token log-ratios)."""
    max_prompt_length: Annotated[
        int, IntRange(1, MAX_SEQ_LENGTH, unset=-1, means="half of max_seq_length")
    ] = -1
    """``method: dpo``: keep the last this many prompt tokens; the answers get the rest of
    ``max_seq_length`` (-1: half of it)."""
    precompute_reference: bool = False
    """``method: dpo`` with full fine-tuning: compute the reference log-probs once in
    preprocess instead of keeping a frozen copy of the model (LoRA disables its adapter)."""
    generation_eval_rows: int = Field(16, ge=0, le=1024)
    """Prompts of ``data.test_gen`` (else ``data.test``) answered and scored with ROUGE-L and
    BLEU by the evaluate stage (0: none)."""
    generation_max_new_tokens: int = Field(64, ge=1, le=4096)
    """Most new tokens of each generated answer in the evaluate stage."""

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
