"""The fault points the slow training tests use: inert unless named, a real SIGKILL or a
full-disk OSError when named."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys

import pytest

from chattune.train import faults


def test_fault_points_do_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.hit("checkpoint_save:2")
    monkeypatch.setenv(faults.ENV, "checkpoint_save:4=enospc")
    faults.hit("checkpoint_save:2")  # another point: nothing


def test_enospc_raises_what_a_full_disk_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV, "checkpoint_save:4=enospc")
    with pytest.raises(OSError) as err:
        faults.hit("checkpoint_save:4")
    assert err.value.errno == errno.ENOSPC


def test_kill_is_a_real_sigkill_of_the_process() -> None:
    code = "from chattune.train import faults; faults.hit('package'); print('survived')"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={faults.ENV: "package", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL and "survived" not in proc.stdout
