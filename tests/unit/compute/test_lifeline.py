"""chattune.compute.lifeline on its own, with tiny processes: a child dies with its parent
process even while a forked copy of the parent lives on, and the by-hand fallback (polling
the parent read at start) catches a parent that died before it started polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from chattune.serving import procs

PARENT = """
import os, subprocess, sys, time
from chattune.compute import lifeline

fds, env = lifeline.child_options()
child = subprocess.Popen(
    [sys.executable, "-c", "import time; from chattune.compute import lifeline; "
     "assert lifeline.hold(); time.sleep(600)"],
    pass_fds=fds, env={**os.environ, **env},
)
if os.fork() == 0:  # a forked copy of this process, never exec'd, outlives it
    time.sleep(30)
    os._exit(0)
print(child.pid, flush=True)
time.sleep(600)
"""

LATE_WATCH = """
import os, sys, time
from chattune.compute import lifeline

parent = os.getppid()
print(os.getpid(), flush=True)
sys.stdin.readline()  # the parent dies here, before the watch starts
lifeline.watch_parent(parent, every=0.1)
time.sleep(600)
"""


def test_a_child_dies_with_its_parent_though_a_fork_of_the_parent_lives() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    forked = [p for p in procs.group_members(os.getpgid(parent.pid)) if p.ppid() == parent.pid]
    time.sleep(0.5)  # the child holds its lifeline by now
    assert procs.alive(child)
    parent.kill()
    parent.wait()
    try:
        assert procs.wait_gone([child], timeout=5), "the lifeline stayed open"
    finally:
        for proc in forked:
            proc.kill()


def test_the_by_hand_fallback_sees_a_parent_that_died_before_it_watched() -> None:
    middle = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
            "stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True); "
            "print(p.stdout.readline(), end='', flush=True); sys.stdin.readline()",
            LATE_WATCH,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert middle.stdout is not None and middle.stdin is not None
    child = int(middle.stdout.readline())
    os.kill(middle.pid, signal.SIGKILL)  # its stdin pipe to the child closes: it goes on
    middle.wait()
    assert procs.wait_gone([child], timeout=5), "the late watch missed the dead parent"
