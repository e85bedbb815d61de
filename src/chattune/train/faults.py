"""Fault points for the reliability suite: ``CHATTUNE_FAULT=POINT[=ACTION]`` makes the job
(or registry) process fail exactly there, so a test can kill it at a moment no outside poll
could catch.

Points (each passed once by a job): ``stage:NAME`` (a stage is about to run), ``step:N``
(optimizer step N is done, nothing of it logged or saved yet), ``checkpoint_save:N``
(checkpoint N's weights, optimizer, RNG and trainer state are written, its completeness
marker not yet), ``package`` (the transformers folder is linked, the MLflow model not yet
written); and in ``models register``/``delete`` (docs/registry.md): ``register:staged``,
``register:recorded``, ``register:placed``, ``register:mlflow_created``, ``register:synced``,
``register:ready``, ``register:rollback``, ``delete:marked``, ``delete:mlflow_removed``,
``delete:folder_removed``.
Actions: ``kill`` (default: SIGKILL of the process itself, a real ``kill -9``) or
``enospc`` (an ``OSError`` "No space left on device", as a full disk raises it).

Unset (always, outside tests) it costs one environment lookup per point.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "CHATTUNE_FAULT"
ACTIONS = ("kill", "enospc")


def hit(point: str) -> None:
    """Fail here if ``CHATTUNE_FAULT`` names ``point``; otherwise do nothing."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, action = wanted.partition("=")
    if name != point:
        return
    if (action or "kill") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
