"""Training memory estimate from a model's config (``config.json``), no weights loaded.

Weights, gradients, optimizer state and activations for full or LoRA fine-tuning at a
precision, batch size and sequence length. Shapes come from the decoder-only layout every
catalog model shares (Llama: separate q/k/v and gate/up projections; Phi-3: fused
``qkv_proj`` and ``gate_up_proj``), so the parameter count is exact (a test compares it with
the model cards and with PEFT's trainable count) and the rest is an upper-leaning estimate.

>>> arch = Architecture.from_config({"model_type": "llama", "hidden_size": 576,
...     "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
...     "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True})
>>> arch.num_parameters
134515008
>>> est = estimate(arch, TrainingShape(lora_r=8, max_seq_length=512))
>>> round(est.total_gb, 1) > 1
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from chattune.errors import ValidationError

GB = 2**30
# Bytes per value for (weights, activations): precision "32" trains fp32; "bf16" loads the
# weights in bfloat16 (train/finetune.py); "16" is fp16 mixed precision over fp32 weights.
PRECISION_BYTES = {"32": (4, 4), "bf16": (2, 2), "16": (4, 2)}
# Memory the training process holds besides tensors: the Python runtime with torch,
# transformers, PEFT and MLflow imported, allocator slack. Measured on this machine's CPU.
PROCESS_OVERHEAD_GB = 1.0
MARGIN = 1.1  # allocator fragmentation and temporaries not counted below
# Measured peak RSS of LoRA training steps on this CPU (SmolLM2-135M, fp32, sdpa attention,
# 512/1024/2048 tokens: 2.7/5.0/7.7 GB) grows linearly with the sequence, at 1.7 times the
# layer tensors counted in _activation_values (tiny-random-phi3, logits-bound: exact).
ACTIVATION_FACTOR = 1.7


@dataclass(frozen=True)
class Linear:
    """One linear projection inside a decoder layer (PEFT names it by ``name``'s suffix)."""

    name: str
    fan_in: int
    fan_out: int


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide training memory, read from a transformers ``config.json``."""

    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    context_length: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Architecture:
        """From a parsed ``config.json``; a missing size names the key."""
        needed: tuple[str, ...] = ("hidden_size", "intermediate_size", "num_hidden_layers")
        needed += ("vocab_size", "num_attention_heads")
        missing = [k for k in needed if not isinstance(config.get(k), int)]
        if missing:
            raise ValidationError(
                f"model config: no {', '.join(missing)} (model_type "
                f"{config.get('model_type', '?')})",
                "use a decoder-only transformers model whose config.json names its sizes",
            )
        heads = config["num_attention_heads"]
        return cls(
            model_type=str(config.get("model_type", "")),
            hidden=config["hidden_size"],
            intermediate=config["intermediate_size"],
            layers=config["num_hidden_layers"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            vocab=config["vocab_size"],
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            context_length=int(config.get("max_position_embeddings") or 2048),
        )

    def linears(self) -> list[Linear]:
        """The linear projections of one decoder layer, by their module names."""
        h, i = self.hidden, self.intermediate
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        if self.model_type == "phi3":
            return [
                Linear("self_attn.qkv_proj", h, q + 2 * kv),
                Linear("self_attn.o_proj", q, h),
                Linear("mlp.gate_up_proj", h, 2 * i),
                Linear("mlp.down_proj", i, h),
            ]
        return [
            Linear("self_attn.q_proj", h, q),
            Linear("self_attn.k_proj", h, kv),
            Linear("self_attn.v_proj", h, kv),
            Linear("self_attn.o_proj", q, h),
            Linear("mlp.gate_proj", h, i),
            Linear("mlp.up_proj", h, i),
            Linear("mlp.down_proj", i, h),
        ]

    @property
    def num_parameters(self) -> int:
        """Every weight: embeddings, layers (two RMSNorms each), final norm, LM head."""
        per_layer = sum(m.fan_in * m.fan_out for m in self.linears()) + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * per_layer + self.hidden


@dataclass(frozen=True)
class TrainingShape:
    """What a job trains with, in the job spec's parameter names (their defaults here are
    chattune's parameter defaults; a test keeps them equal to ``TrainParams``)."""

    apply_lora: bool = True
    lora_r: int = 8
    lora_target_modules: list[str] | None = None
    lora_dropout: float = 0.0
    precision: str = "32"
    per_device_train_batch_size: int = 1
    max_seq_length: int = -1
    optim: str = "adamw_torch"
    processes: int = 1
    deepspeed_stage: int | None = None

    def but(self, **changes: Any) -> TrainingShape:
        return replace(self, **changes)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per training process, by what holds them."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    trainable_parameters: int
    total_parameters: int
    seq_length: int
    processes: int = 1
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def per_process_gb(self) -> float:
        tensors = self.weights + self.gradients + self.optimizer + self.activations
        return tensors * MARGIN / GB + PROCESS_OVERHEAD_GB

    @property
    def total_gb(self) -> float:
        """What all processes on this node need together when they share its memory (CPU)."""
        return self.per_process_gb * self.processes

    def breakdown(self) -> dict[str, float]:
        """GB by part (what ``compute check`` prints)."""
        return {
            "weights": round(self.weights / GB, 3),
            "gradients": round(self.gradients / GB, 3),
            "optimizer": round(self.optimizer / GB, 3),
            "activations": round(self.activations / GB, 3),
            "overhead": PROCESS_OVERHEAD_GB,
        }


def estimate(arch: Architecture, shape: TrainingShape) -> MemoryEstimate:
    """Memory one training process needs for ``shape`` on ``arch`` (see module docstring)."""
    weight_bytes, act_bytes = _precision(shape.precision)
    seq = shape.max_seq_length if shape.max_seq_length > 0 else arch.context_length
    targets = lora_targets(arch, shape.lora_target_modules) if shape.apply_lora else []
    lora_params = arch.layers * sum(shape.lora_r * (m.fan_in + m.fan_out) for m in targets)
    weights: float  # bytes; ZeRO divides them (and gradients, optimizer) across processes
    if shape.apply_lora:
        # PEFT keeps adapters in float32 even over bf16 weights (autocast_adapter_dtype).
        trainable, train_bytes = lora_params, 4
        weights = arch.num_parameters * weight_bytes + lora_params * 4
    else:
        trainable, train_bytes = arch.num_parameters, weight_bytes
        weights = arch.num_parameters * weight_bytes
    gradients: float = trainable * train_bytes
    optimizer: float = _optimizer_bytes(arch, shape, targets, train_bytes)
    world = shape.processes
    if shape.deepspeed_stage and world > 1:  # ZeRO shards these across the processes
        gradients, optimizer = gradients / world, optimizer / world
        if shape.deepspeed_stage == 3:
            weights /= world
    tokens = shape.per_device_train_batch_size * seq
    activations = tokens * _activation_values(arch, shape, targets, act_bytes)
    return MemoryEstimate(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        trainable_parameters=trainable,
        total_parameters=arch.num_parameters + lora_params,
        seq_length=seq,
        processes=world,
    )


def lora_targets(arch: Architecture, names: list[str] | None) -> list[Linear]:
    """The layer projections LoRA wraps: every one for ``None``/``all-linear`` (PEFT's
    rule: a target matches a module whose name is it or ends with ``.`` + it)."""
    layer = arch.linears()
    if not names or names == ["all-linear"] or names == "all-linear":
        return layer
    found = [m for m in layer if any(m.name == t or m.name.endswith("." + t) for t in names)]
    if not found:
        known = ", ".join(m.name.split(".")[-1] for m in layer)
        raise ValidationError(
            f"parameters.lora_target_modules {names}: no such layer in this "
            f"{arch.model_type} model",
            f"use some of: {known} (or leave it out for every linear layer)",
        )
    return found


def _precision(precision: str) -> tuple[int, int]:
    if precision not in PRECISION_BYTES:
        raise ValidationError(
            f"precision {precision!r} is not known", f"use one of {', '.join(PRECISION_BYTES)}"
        )
    return PRECISION_BYTES[precision]


def _optimizer_bytes(
    arch: Architecture, shape: TrainingShape, targets: list[Linear], dtype_bytes: int
) -> float:
    """AdamW keeps two moments per trained value; Adafactor a row and a column factor per
    matrix (no first moment, transformers' default)."""
    if shape.optim != "adafactor":
        if shape.apply_lora:
            return (
                2
                * dtype_bytes
                * arch.layers
                * sum(shape.lora_r * (m.fan_in + m.fan_out) for m in targets)
            )
        return 2 * dtype_bytes * arch.num_parameters
    if shape.apply_lora:
        per_layer = sum(2 * shape.lora_r + m.fan_in + m.fan_out for m in targets)
        return 4 * arch.layers * per_layer
    per_layer = sum(m.fan_in + m.fan_out for m in arch.linears()) + 2 * arch.hidden
    embeddings = (arch.vocab + arch.hidden) * (1 if arch.tied_embeddings else 2)
    return 4 * (arch.layers * per_layer + embeddings + arch.hidden)


def _activation_values(
    arch: Architecture, shape: TrainingShape, targets: list[Linear], act_bytes: int
) -> float:
    """Bytes held for the backward pass, per token.

    Per layer: each RMSNorm's input, float32 copy and output, q/k/v (k and v repeated to
    every query head), the attention output, the four MLP intermediates (gate, up,
    activation, product) and a LoRA adapter's rank-sized intermediate (plus a dropout copy
    of its input), times ACTIVATION_FACTOR for autograd temporaries and allocator slack.
    Then the logits, which the loss upcasts to float32 (a copy, log-softmax, its gradient).
    """
    h, i = arch.hidden, arch.intermediate
    q, kv = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    per_layer = 6 * h + 4 * q + 2 * kv + 4 * i
    per_layer += sum(shape.lora_r + (m.fan_in if shape.lora_dropout > 0 else 0) for m in targets)
    logits = arch.vocab * (act_bytes + 12)
    return arch.layers * per_layer * act_bytes * ACTIVATION_FACTOR + logits
