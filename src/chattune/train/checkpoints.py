"""Checkpoint folders: which are complete, which to resume from, what the run's loss was.

A checkpoint is written to ``.staging-checkpoint-N`` and renamed to ``checkpoint-N`` only once
every file is in place (see :class:`chattune.train.trainer.ChattuneTrainer`), so a kill during a
save leaves a staging folder, never a half checkpoint. Folders from older versions, or ones
damaged by hand, are still checked: a checkpoint is complete when its trainer state is there.

No torch here: the runner and ``jobs show`` read checkpoints cheaply.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

STAGING_PREFIX = ".staging-"
TRAINER_STATE = "trainer_state.json"
RUN_STATE = "chattune_state.json"
"""Our additions to a checkpoint: the sum of the training loss over all steps so far."""
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint folder and its optimizer step."""

    path: Path
    step: int

    @property
    def name(self) -> str:
        return self.path.name

    def loss_sum(self) -> float | None:
        """Sum of the per-step training loss up to this checkpoint (None: not recorded)."""
        try:
            return float(json.loads((self.path / RUN_STATE).read_text())["loss_sum"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


def is_complete(folder: Path) -> bool:
    """A checkpoint is usable when its trainer state (written last) is there and parses."""
    try:
        json.loads((folder / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return False
    return True


def step_of(folder: Path) -> int:
    """The optimizer step a complete checkpoint was saved at."""
    return int(json.loads((folder / TRAINER_STATE).read_text()).get("global_step", 0))


def newest_complete(output_dir: str | Path, log: logging.Logger | None = None) -> Checkpoint | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``; incomplete ones are skipped
    (and said so in ``log``)."""
    found = []
    for folder in Path(output_dir).glob("checkpoint-*"):
        match = _NAME.match(folder.name)
        if match and folder.is_dir():
            found.append(Checkpoint(folder, int(match.group(1))))
    for checkpoint in sorted(found, key=lambda c: c.step, reverse=True):
        if is_complete(checkpoint.path):
            return checkpoint
        if log is not None:
            log.warning(
                "%s is incomplete (no readable %s): skipped", checkpoint.name, TRAINER_STATE
            )
    return None


def remove_staging(output_dir: str | Path) -> None:
    """Drop half-written checkpoints a killed save left behind."""
    for folder in Path(output_dir).glob(f"{STAGING_PREFIX}checkpoint-*"):
        shutil.rmtree(folder, ignore_errors=True)


def write_run_state(folder: Path, loss_sum: float) -> None:
    (folder / RUN_STATE).write_text(json.dumps({"loss_sum": loss_sum}))
