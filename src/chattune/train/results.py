"""What each pipeline stage returns: typed results, stored as JSON and read back as models.

A stage takes plain typed arguments (earlier results among them) and returns one of these;
nothing here imports torch, so the pipeline table and the CLI can name them cheaply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    """Base of stage results: unknown keys are kept out, values are JSON-ready."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Validated(Result):
    """``validate``: the model reference and data files are usable."""

    model: str
    rows: dict[str, int]
    data_sha256: dict[str, str]


class ImportedModel(Result):
    """``model_import``: the model as a local transformers folder."""

    model_dir: str
    model: str
    model_type: str
    context_length: int


class SplitStats(Result):
    """One preprocessed split: where its examples are and what they hold."""

    file: str
    examples: int
    tokens: int
    target_tokens: int
    truncated: int
    dropped_no_target: int


class Preprocessed(Result):
    """``preprocess``: tokenized examples per split, at the resolved maximum length."""

    max_seq_length: int
    splits: dict[str, SplitStats]


class FineTuned(Result):
    """``finetune``: the final model folder (merged, full, or an adapter over the base)."""

    final_model: str
    adapter_only: bool
    base_model_dir: str
    checkpoints_dir: str
    best_checkpoint: str | None
    global_step: int
    train_loss: float
    """Mean training loss over all the run's steps (those before a resume included)."""
    train_rows: int
    resumed_from: str | None = None
    """The checkpoint this training continued from, when it resumed."""


class Evaluation(Result):
    """``evaluate``: base vs fine-tuned metrics on the test split (empty when none)."""

    metrics: dict[str, float] = {}
    examples: int = 0
    skipped: str | None = None
    report_json: str | None = None
    """The evaluation report (metrics table, sample answers side by side) as JSON ..."""
    report_markdown: str | None = None
    """... and as Markdown."""


class Packaged(Result):
    """``package``: a PyTorch model folder and an MLflow model folder."""

    pytorch_model_folder: str
    mlflow_model_folder: str


def _no_metrics(_metrics: dict[str, float], _step: int | None) -> None:
    return None


def _no_progress(**_fields: Any) -> None:
    return None


@dataclass
class Hooks:
    """Where a stage reports: its log, metrics (MLflow) and live progress (``jobs stream``)."""

    log: logging.Logger = field(default_factory=lambda: logging.getLogger("chattune.stage"))
    metrics: Callable[[dict[str, float], int | None], None] = _no_metrics
    progress: Callable[..., None] = _no_progress
