"""Putting a version's folder in place: staged, claimed under a lock, never half-written.

A register first builds the version in a staging folder next to its final place (hard links
to the job's packaged files: seconds, no new disk), then, holding the model name's lock,
picks the version, writes its store row as ``pending`` and renames the staging folder into
place: the rename is the commit point (``registry.consistency``). A killed register leaves
a staging folder (cleared by the next command that holds the name's lock) or a pending row.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chattune.train.package import link_tree
from chattune.workspace import Workspace, file_lock

STAGING_PREFIX = ".staging-"


def stage(ws: Workspace, name: str, source: Path) -> Path:
    """A complete linked copy of ``source`` in the model name's folder (not listed yet)."""
    root = ws.root / "models" / name
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    link_tree(source, staging)
    return staging


@contextmanager
def name_lock(ws: Workspace, name: str) -> Iterator[None]:
    """One register/delete of ``name`` at a time on this machine; stale leftovers cleared."""
    root = ws.root / "models" / name
    with file_lock(root / ".lock"):
        _clear_stale_staging(root)
        yield


@contextmanager
def try_name_lock(ws: Workspace, name: str) -> Iterator[bool]:
    """The name's lock when free (True; stale leftovers cleared), else False at once: a
    register or delete of ``name`` is running, and will finish its own work."""
    root = ws.root / "models" / name
    if not root.is_dir():
        yield False
        return
    with open(root / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            _clear_stale_staging(root)
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def with_leftovers(ws: Workspace, name: str | None = None) -> set[str]:
    """Model names (``name``, or all) holding a staging folder a killed register may have
    left (or a running one is filling)."""
    root = ws.root / "models"
    try:  # a hostile name (300 characters) is refused later, by the lookup, in one line
        roots = [root / name] if name else (list(root.iterdir()) if root.is_dir() else [])
        return {r.name for r in roots if r.is_dir() and any(r.glob(f"{STAGING_PREFIX}*"))}
    except OSError:
        return set()


def next_version(ws: Workspace, name: str, taken: list[str]) -> str:
    """One past the highest numeric version among ``taken`` and the folders on disk."""
    root = ws.root / "models" / name
    on_disk = [p.name for p in root.iterdir()] if root.exists() else []
    numbers = [int(v) for v in [*taken, *on_disk] if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def place(staging: Path, dest: Path) -> None:
    """Rename the staged folder to ``dest``; a leftover ``dest`` without a row is removed."""
    if dest.exists():  # a register killed after its rename, before its row: not listed
        discard(dest)
    os.rename(staging, dest)


def discard(folder: Path) -> None:
    """Remove a version folder: renamed away first, so no reader sees it half-deleted."""
    if not folder.exists():
        return
    trash = folder.with_name(f"{STAGING_PREFIX}trash-{secrets.token_hex(4)}")
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _clear_stale_staging(root: Path) -> None:
    for leftover in root.glob(f"{STAGING_PREFIX}*"):
        pid = leftover.name.removeprefix(STAGING_PREFIX).split("-")[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
