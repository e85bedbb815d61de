"""Checkpoint completeness by marker, and rotation that never loses the last complete one."""

from __future__ import annotations

import json
from pathlib import Path

from chattune.train import checkpoints as ck


def _checkpoint(root: Path, step: int, marked: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / ck.TRAINER_STATE).write_text(json.dumps({"global_step": step}))
    if marked:
        ck.mark_complete(folder, loss_sum=float(step))
    return folder


def test_an_unmarked_checkpoint_is_skipped_with_its_reason(tmp_path) -> None:
    import logging

    _checkpoint(tmp_path, 1)
    _checkpoint(tmp_path, 2, marked=False)  # killed between the Trainer's save and the marker
    lines: list[str] = []
    log = logging.getLogger("test.checkpoints")
    log.addHandler(
        type("H", (logging.Handler,), {"emit": lambda s, r: lines.append(r.getMessage())})()
    )
    newest = ck.newest_complete(tmp_path, log)
    assert newest is not None and newest.step == 1 and newest.loss_sum() == 1.0
    assert lines == [
        "checkpoint-2 is incomplete (no chattune_state.json, the completeness marker written "
        "last): skipped"
    ]
    ck.remove_incomplete(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]


def test_rotation_keeps_the_newest_complete_ones_and_never_an_unmarked_one_instead(
    tmp_path,
) -> None:
    for step in (1, 2, 3):
        _checkpoint(tmp_path, step)
    _checkpoint(tmp_path, 4, marked=False)  # being written now
    ck.rotate(tmp_path, keep=1)
    # checkpoint-4 is not complete yet: checkpoint-3 stays whatever the limit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-4"]
    ck.mark_complete(tmp_path / "checkpoint-4", 4.0)
    ck.rotate(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]


def test_rotation_drops_unmarked_folders_older_than_the_newest_complete_one(tmp_path) -> None:
    _checkpoint(tmp_path, 1)
    _checkpoint(tmp_path, 2, marked=False)
    _checkpoint(tmp_path, 3)
    ck.rotate(tmp_path, keep=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-3"]


def test_the_marker_is_written_whole_or_not_at_all(tmp_path) -> None:
    folder = _checkpoint(tmp_path, 5, marked=False)
    assert not ck.is_complete(folder)
    ck.mark_complete(folder, 12.5)
    assert ck.is_complete(folder) and not list(folder.glob("*.tmp"))
    assert ck.Checkpoint(folder, 5).loss_sum() == 12.5
