"""Peak resident memory of one stage: the job's process and the processes it starts.

Stages run one after another in the job's process, so the process's own high-water mark
(``VmHWM``) is reset when a stage starts (Linux ``/proc/self/clear_refs``); processes the
stage starts (preprocess workers, torchrun ranks) are sampled, with this process, every
``interval`` seconds. The peak is the larger of the two: exact for a stage that starts no
process, a sampled sum (shared pages counted once per process) for one that does.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from types import TracebackType

INTERVAL_S = 0.2


class PeakRss:
    """``with PeakRss() as peak: ...`` then ``peak.mb``: the block's peak RSS in MiB.

    >>> with PeakRss() as peak:  # doctest: +SKIP
    ...     data = bytearray(200 << 20)
    >>> peak.mb > 200  # doctest: +SKIP
    True
    """

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self.sampled = 0
        self.mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-rss")

    def __enter__(self) -> PeakRss:
        _reset_high_water_mark()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.mb = max(self.sampled, _high_water_mark()) / 2**20
        """Peak resident memory in MiB (bytes / 2**20), known when the block ends."""

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # a worker that just exited
                    continue
            self.sampled = max(self.sampled, total)
            if self._stop.wait(self.interval):
                return


def _reset_high_water_mark() -> None:
    # Not Linux, or not allowed: the peak then counts from the process start.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _high_water_mark() -> int:
    """This process's peak RSS in bytes since the last reset (0 where /proc has no VmHWM)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
