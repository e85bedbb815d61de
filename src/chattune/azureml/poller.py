"""What ``begin_*`` calls return. chattune's SDK calls wait until the work is done, so the
poller holds a finished result; ``wait()`` and ``result()`` return at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Poller:
    """A finished long-running operation (the platform's ``LROPoller`` surface)."""

    def __init__(self, result: Callable[[], Any] | None = None) -> None:
        self._result = result() if result is not None else None

    def result(self, timeout: float | None = None) -> Any:
        return self._result

    def wait(self, timeout: float | None = None) -> None:
        """Nothing to wait for: the operation finished when it began."""

    def done(self) -> bool:
        return True

    def status(self) -> str:
        return "Succeeded"
