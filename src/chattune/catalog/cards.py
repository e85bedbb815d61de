"""Foundation-model catalog: the built-in model cards (DESIGN.md §3)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chattune.errors import NotFoundError


class ModelCard(BaseModel):
    """One foundation model in the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    source: str = Field(description="hf://org/id, or offline:NAME for a fetched offline asset")
    description: str
    license: str
    context_length: int
    num_parameters: int = Field(description="Parameter count (for memory estimates)")
    labels: list[str] = Field(default_factory=lambda: ["latest"])
    tags: dict[str, object] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        """``NAME:VERSION``: the reference a job's ``model`` takes for exactly this card."""
        return f"{self.name}:{self.version}"

    @property
    def parameters(self) -> str:
        """Parameter count, human readable (``135M``, ``3.8B``)."""
        n = self.num_parameters
        return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else str(n)

    @property
    def model_specific_defaults(self) -> dict[str, Any]:
        """The ``model_specific_defaults`` tag: job parameters this model starts from."""
        value = self.tags.get("model_specific_defaults")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def finetune_compute_allow_list(self) -> list[str]:
        """The ``finetune_compute_allow_list`` tag (empty: any compute)."""
        value = self.tags.get("finetune_compute_allow_list")
        return [str(v) for v in value] if isinstance(value, list) else []


_CPU_AND_GPU = ["local-cpu", "local-gpu"]

CATALOG: tuple[ModelCard, ...] = (
    ModelCard(
        name="Phi-3-mini-4k-instruct",
        version="1",
        source="hf://microsoft/Phi-3-mini-4k-instruct",
        description="Microsoft Phi-3 mini, 3.8B, 4k context; the reference model (needs the hub).",
        license="MIT",
        context_length=4096,
        num_parameters=3_821_079_552,
        tags={
            "finetune_compute_allow_list": ["local-gpu"],
            "inference_compute_allow_list": ["local-gpu", "local-cpu"],
            # The hub's config.json sizes, so `compute check` estimates it without the hub.
            "config": {
                "model_type": "phi3",
                "hidden_size": 3072,
                "intermediate_size": 8192,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 32,
                "vocab_size": 32064,
                "tie_word_embeddings": False,
                "max_position_embeddings": 4096,
            },
            "model_specific_defaults": {
                "apply_lora": True,
                "apply_deepspeed": True,
                "deepspeed_stage": 2,
                "precision": "bf16",
                "lora_target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
            },
        },
    ),
    ModelCard(
        name="SmolLM2-135M-Instruct",
        version="1",
        source="offline:SmolLM2-135M-Instruct",
        description="HuggingFace SmolLM2 135M instruct; offline default, trains on a laptop CPU.",
        license="Apache-2.0",
        context_length=8192,
        num_parameters=134_515_008,
        tags={
            "finetune_compute_allow_list": _CPU_AND_GPU,
            "inference_compute_allow_list": _CPU_AND_GPU,
            "model_specific_defaults": {
                "apply_lora": True,
                "learning_rate": 2e-4,
                "max_seq_length": 512,
                "lora_target_modules": [
                    "q_proj",
                    "k_proj",
                    "v_proj",
                    "o_proj",
                    "gate_proj",
                    "up_proj",
                    "down_proj",
                ],
            },
        },
    ),
    ModelCard(
        name="tiny-random-phi3",
        version="1",
        source="offline:tiny-random-phi3",
        description="Phi-3 architecture, real Phi-3 tokenizer and template, 2 layers of width 64, "
        "seeded random weights; for tests.",
        license="MIT",
        context_length=4096,
        num_parameters=4_186_432,
        tags={
            "finetune_compute_allow_list": _CPU_AND_GPU,
            "inference_compute_allow_list": _CPU_AND_GPU,
            "model_specific_defaults": {
                "apply_lora": True,
                "learning_rate": 1e-3,
                "max_seq_length": 256,
                "lora_target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
            },
        },
    ),
)


def get_card(name: str, label: str | None = None, version: str | None = None) -> ModelCard:
    """The catalog card named ``name`` (at ``label`` or ``version``)."""
    for card in CATALOG:
        if card.name.lower() != name.lower():
            continue
        if version is not None and card.version != version:
            raise NotFoundError(
                f"model {card.name} has no version {version!r} in the catalog",
                f"use version {card.version} or label 'latest'",
            )
        if label is not None and label not in card.labels:
            raise NotFoundError(
                f"model {card.name} has no label {label!r}", f"use one of {card.labels}"
            )
        return card
    names = ", ".join(c.name for c in CATALOG)
    raise NotFoundError(
        f"unknown model {name!r}: not in the catalog",
        f"use one of {names}, a local model folder, or hf://org/id (`chattune models catalog`)",
    )
