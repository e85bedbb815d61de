"""Per-stage peak RSS: the process's own high-water mark, reset per stage, and its children."""

from __future__ import annotations

import subprocess
import sys

from chattune.jobs.peak import PeakRss


def test_a_stage_peak_counts_its_own_allocation_and_not_an_earlier_stages() -> None:
    with PeakRss() as first:
        big = bytearray(300 << 20)
        big[::4096] = b"x" * len(big[::4096])  # touched: resident
        del big
    with PeakRss() as second:
        pass
    assert first.mb > 300
    assert second.mb < first.mb - 250  # the high-water mark was reset between stages


def test_a_stage_peak_counts_the_processes_it_starts() -> None:
    code = "b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1)"
    with PeakRss(interval=0.05) as peak:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert peak.mb > 300
