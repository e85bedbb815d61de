"""Checkpoint folders: which are complete, which to resume from, what the run's loss was.

The Trainer writes ``checkpoint-N`` (weights, optimizer, RNG, trainer state) in place; once
every rank has written its part, :class:`chattune.train.trainer.ChattuneTrainer` adds
``chattune_state.json`` (the run's loss sum so far), atomically, as the **completeness
marker**. A checkpoint is complete when its trainer state parses and its marker is there, so a
kill during a save leaves a folder that resume skips (and removes), never one it trips over.
Checkpoints of older chattune versions (written to ``.staging-checkpoint-N`` and renamed)
carry the same marker, so they still resume.

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
"""Our addition to a checkpoint, written last: the sum of the training loss over all steps so
far. Its presence marks the checkpoint complete."""
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


def missing(folder: Path) -> str | None:
    """Why a checkpoint folder is not usable (None: it is complete)."""
    try:
        json.loads((folder / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return f"no readable {TRAINER_STATE}"
    try:
        json.loads((folder / RUN_STATE).read_text())
    except (OSError, ValueError):
        return f"no {RUN_STATE}, the completeness marker written last"
    return None


def is_complete(folder: Path) -> bool:
    """A checkpoint is usable when its trainer state parses and its marker is there."""
    return missing(folder) is None


def folders(output_dir: str | Path) -> list[Checkpoint]:
    """Every ``checkpoint-N`` folder, complete or not, oldest first."""
    found = []
    for folder in Path(output_dir).glob("checkpoint-*"):
        match = _NAME.match(folder.name)
        if match and folder.is_dir():
            found.append(Checkpoint(folder, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def step_of(folder: Path) -> int:
    """The optimizer step a complete checkpoint was saved at."""
    return int(json.loads((folder / TRAINER_STATE).read_text()).get("global_step", 0))


def newest_complete(output_dir: str | Path, log: logging.Logger | None = None) -> Checkpoint | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``; incomplete ones are skipped
    (and said so in ``log``)."""
    for checkpoint in reversed(folders(output_dir)):
        why = missing(checkpoint.path)
        if why is None:
            return checkpoint
        if log is not None:
            log.warning("%s is incomplete (%s): skipped", checkpoint.name, why)
    return None


def remove_staging(output_dir: str | Path) -> None:
    """Drop the staging folders a killed save of an older version left behind."""
    for folder in Path(output_dir).glob(f"{STAGING_PREFIX}checkpoint-*"):
        shutil.rmtree(folder, ignore_errors=True)


def remove_incomplete(output_dir: str | Path) -> None:
    """Drop unmarked ``checkpoint-N`` folders newer than the newest complete one (a save
    that a kill or a full disk cut short): the resumed run writes them again."""
    newest = newest_complete(output_dir)
    for checkpoint in folders(output_dir):
        if (newest is None or checkpoint.step > newest.step) and not is_complete(checkpoint.path):
            shutil.rmtree(checkpoint.path, ignore_errors=True)


def mark_complete(folder: Path, loss_sum: float) -> None:
    """Write the completeness marker (temp + rename: it is there whole or not at all)."""
    tmp = folder / f"{RUN_STATE}.tmp"
    tmp.write_text(json.dumps({"loss_sum": loss_sum}))
    tmp.replace(folder / RUN_STATE)


def rotate(output_dir: str | Path, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints (None: keep all), and
    unmarked folders older than the newest complete one; the newest complete checkpoint is
    never deleted. The folders deleted."""
    complete = [c for c in folders(output_dir) if is_complete(c.path)]
    if not complete:
        return []
    newest = complete[-1]
    doomed = complete[:-keep] if keep else []
    doomed += [c for c in folders(output_dir) if c.step < newest.step and not is_complete(c.path)]
    for checkpoint in doomed:
        shutil.rmtree(checkpoint.path, ignore_errors=True)
    return [c.path for c in doomed]
