"""How a job process learns it must stop: SIGTERM becomes :class:`Canceled` in its main thread."""

from __future__ import annotations

import signal
from types import FrameType


class Canceled(Exception):
    """Raised in the job process when it is asked to stop (SIGTERM)."""


def _raise(_signum: int, _frame: FrameType | None) -> None:
    raise Canceled()


def on_sigterm_cancel() -> None:
    """From now on, SIGTERM raises :class:`Canceled` (between Python bytecodes)."""
    signal.signal(signal.SIGTERM, _raise)
