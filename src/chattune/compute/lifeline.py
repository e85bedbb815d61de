"""Children that die with the process that started them, however it dies (``kill -9``
included), on every start path: see docs/processes.md.

Three mechanisms, all keyed to the parent *process*:

- A lifeline pipe, for chattune children (a gateway's workers): :func:`child_options` in the
  parent, :func:`hold` first thing in the child's ``main``. The parent keeps the write end
  open for its whole life and never passes it on; the child gets the read end. When the
  parent process is gone, however it died, the kernel closes the write end and the child's
  read returns EOF: the child stops (its :func:`on_orphaned` steps first, so what it started
  in groups of its own goes too). A parent that died before the child looked leaves EOF
  waiting, so nothing is missed in between; and it does not matter which of the parent's
  threads started the child.
- ``multiprocessing``'s own parent sentinel, the same kind of pipe, for a pool's workers
  (:func:`hold_multiprocessing_parent` in the pool's initializer).
- ``PR_SET_PDEATHSIG`` (Linux), for children that are not chattune code (torchrun, vLLM's
  server) or whose parent is not (a rank under torchrun): :func:`pdeathsig_preexec` sets it
  in the child between fork and exec, and exits the child if the parent died before that.
  The kernel sends the signal when the *thread* that started the child ends, so only a
  thread that lives as long as the child may start it that way (the caller's duty).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ENV = "CHATTUNE_LIFELINE"
"""``FD:PARENT_PID`` for a child started with :func:`child_options`."""
GRACE_S = 3.0
"""Seconds a child whose parent died has to stop cleanly (SIGTERM) before it exits hard."""
ORPHAN_EXIT = 70
PR_SET_PDEATHSIG = 1

log = logging.getLogger("chattune.lifeline")
_lock = threading.Lock()
_pipe: tuple[int, int] | None = None
_last_words: list[Callable[[], None]] = []


def _forget_pipe() -> None:
    """In a forked (not exec'd) child: drop the inherited write end, or the pipe would stay
    open as long as that child lives, whatever happens to its parent."""
    global _pipe
    if _pipe is not None:
        for fd in _pipe:
            with contextlib.suppress(OSError):
                os.close(fd)
        _pipe = None


os.register_at_fork(after_in_child=_forget_pipe)


def _read_end() -> int:
    """The read end of this process's lifeline pipe (made once; never closed here)."""
    global _pipe
    with _lock:
        if _pipe is None:
            _pipe = os.pipe()  # both ends close-on-exec: no child inherits the write end
        return _pipe[0]


def child_options() -> tuple[tuple[int, ...], dict[str, str]]:
    """``(pass_fds, env)`` to add to a ``subprocess.Popen`` of a chattune child that must
    die with this process; the child calls :func:`hold` first thing."""
    fd = _read_end()
    return (fd,), {ENV: f"{fd}:{os.getpid()}"}


def hold(grace: float = GRACE_S) -> bool:
    """In a child started with :func:`child_options`: stop when the parent process is gone
    (SIGTERM to this process, then exit after ``grace`` seconds). False when this process
    was not started that way. Call it before any slow import."""
    value = os.environ.pop(ENV, None)  # for this process only, not for its children
    if not value:
        return False
    fd, parent = (int(x) for x in value.split(":"))
    os.set_inheritable(fd, False)
    threading.Thread(target=_watch, args=(fd, parent, grace), name="lifeline", daemon=True).start()
    return True


def _watch(fd: int, parent: int, grace: float) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 1):  # nobody writes: only EOF (or an error) comes back
            pass
    _parent_gone(f"parent process {parent} is gone; stopping", grace)


def on_orphaned(stop: Callable[[], None]) -> None:
    """Run ``stop`` (within the grace period) when this process's parent is found gone:
    for what this process started in a group of its own (vLLM's server and its engine)."""
    _last_words.append(stop)


def _parent_gone(why: str, grace: float) -> None:
    log.warning("%s", why)
    sys.stderr.flush()
    deadline = time.monotonic() + grace
    for stop in list(_last_words):  # first: SIGTERM may end this process at once
        try:
            stop()
        except Exception:
            log.exception("stopping after the parent's death failed")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(max(deadline - time.monotonic(), 0.0))
    os._exit(ORPHAN_EXIT)


def watch_parent(parent: int, grace: float = GRACE_S, every: float = 0.5) -> None:
    """The fallback for a child started without a lifeline (by hand, with
    ``--exit-with-parent``): poll until ``parent`` is no longer this process's parent.
    ``parent`` must be read at the very start of the process (``os.getppid()``)."""

    def poll() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        _parent_gone(f"parent process {parent} is gone; stopping", grace)

    if parent == 1:  # already an orphan when it started
        os._exit(ORPHAN_EXIT)
    threading.Thread(target=poll, name="lifeline", daemon=True).start()


def hold_multiprocessing_parent() -> None:
    """In a ``multiprocessing`` child (a pool's initializer): exit when the parent process
    is gone. The parent's sentinel is a pipe only the parent writes to: EOF, even if the
    parent died before this ran."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(ORPHAN_EXIT)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def set_pdeathsig(sig: int) -> None:
    """Ask Linux for ``sig`` when the thread that started this process ends (else no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))


def pdeathsig_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for a child that is not chattune code: ``sig`` when the calling
    thread ends, and exit at once if this process died before the child set that up.

    The calling thread must outlive the child. Resolved before the fork: the child only
    makes system calls. ``None`` off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:
            os._exit(ORPHAN_EXIT)

    return preexec


def die_with_parent_named(marker: str, sig: int = signal.SIGTERM) -> None:
    """For a child whose parent is not chattune code (a rank under torchrun): ``sig`` when
    the parent ends, and exit now if the parent (the process whose command line shows
    ``marker``) is already gone. Linux only; elsewhere nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    set_pdeathsig(sig)
    parent = os.getppid()
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        cmdline = b""
    if marker.encode() not in cmdline:
        sys.stderr.write(
            f"exiting: the parent process ({parent}) is not {marker}: it died before this "
            f"process started, or this was started by hand (start it through {marker})\n"
        )
        os._exit(ORPHAN_EXIT)
