"""The local queue: jobs on the ``local`` compute run one at a time, in submission order.

Each job process starts at once (so ``jobs create`` returns and a cancel always has a process
to stop) and waits, status ``queued``, until no job queued before it still holds its place.
A place is held by a live job process, or briefly by a job whose process is being started.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chattune.store.jobs import JobStore

LOCAL = "local"
STARTING_GRACE_S = 60  # a job without a process yet holds its place this long


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ahead_of(jobs: JobStore, name: str, compute: str = LOCAL) -> list[str]:
    """Unfinished jobs queued before ``name`` on ``compute`` that still hold their place."""
    order = jobs.queue(compute)
    names = [n for n, *_ in order]
    if name not in names:
        return []
    now = time.time()
    return [
        n
        for n, _status, pid, queued_at in order[: names.index(name)]
        if (alive(pid) if pid is not None else now - queued_at < STARTING_GRACE_S)
    ]


def position(jobs: JobStore, name: str, compute: str = LOCAL) -> int:
    """1 when ``name`` runs next (or now), 2 with one job ahead, and so on."""
    return 1 + len(ahead_of(jobs, name, compute))


def wait_for_turn(
    jobs: JobStore, name: str, on_wait: Callable[[list[str]], None], poll: float = 0.5
) -> None:
    """Block until no job ahead holds its place; ``on_wait`` hears each new set ahead."""
    said: list[str] = []
    while ahead := ahead_of(jobs, name):
        if ahead != said:
            on_wait(ahead)
            said = ahead
        time.sleep(poll)
