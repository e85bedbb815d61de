"""Process and port helpers for gateways and workers (POSIX).

A gateway runs in its own session, so its process-group id is its pid and its workers share
it: killing that group is the backstop that leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from chattune.compute.lifeline import child_options


def spawn(
    cmd: Sequence[str],
    log_path: Path,
    *,
    new_session: bool = False,
    pass_fds: Sequence[int] = (),
    lifeline: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout and stderr appended to ``log_path``.

    With ``lifeline``, the child (chattune code calling :func:`lifeline.hold`) dies with this
    process, however this process dies: see :mod:`chattune.compute.lifeline`.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if lifeline:
        fds, extra = child_options()
        pass_fds, env = (*pass_fds, *fds), {**env, **extra}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            pass_fds=tuple(pass_fds),
            close_fds=True,
            env=env,
        )


def listen_socket(host: str, port: int = 0) -> socket.socket:
    """A listening TCP socket that a child can inherit (port 0: the OS picks a free one)."""
    sock = socket.create_server((host, port), backlog=128)
    sock.set_inheritable(True)
    return sock


def free_port(host: str) -> int:
    """A port on ``host`` that nothing listens on now."""
    with socket.create_server((host, 0)) as sock:
        return int(sock.getsockname()[1])


def alive(pid: int | None, marker: str | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, ``marker`` is in its command line.

    The marker guards against a recycled pid belonging to an unrelated process.
    """
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker is None or marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def port_open(host: str, port: int | None, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    if not port:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_freed(host: str, port: int, within: float) -> bool:
    """True once nothing accepts on ``host:port``, waiting up to ``within`` seconds: a process
    killed with SIGKILL keeps its listening socket until the kernel has torn down all its
    threads, which can take a moment after it no longer counts as alive."""
    deadline = time.monotonic() + within
    while port_open(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def group_members(pgid: int, marker: str | None = None) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group ``pgid`` (with ``marker`` in argv)."""
    members = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or os.getpgid(proc.pid) != pgid:
                continue
            if marker is None or marker in " ".join(proc.info["cmdline"] or []):
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    """Wait until none of ``pids`` is alive; True if they all went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_group(pgid: int, marker: str, grace: float = 5.0) -> None:
    """SIGTERM, then after ``grace`` seconds SIGKILL, the group's processes showing ``marker``.

    Members are signalled one by one, not with killpg: should the group be gone and its id
    reused, no unrelated process is touched.
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        members = [p.pid for p in group_members(pgid, marker)]
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        wait_gone(members, wait)


def reap(proc: subprocess.Popen[bytes] | None) -> None:
    """Collect a finished child so it does not linger as a zombie."""
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.poll()


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' when absent)."""
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(size - 256 * 1024, 0))
        text = f.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def last_line(path: Path) -> str:
    """The last error-looking line of a log (else its last line), for one-line messages."""
    lines = [x for x in tail(path, 40).splitlines() if x.strip()]
    errors = [x for x in lines if "error" in x.lower()]
    return (errors or lines or ["(no log output)"])[-1].strip()[:300]


def exposure_warning(host: str, endpoint: str) -> str | None:
    """The warning for a gateway host that is not a loopback address, else ``None``.

    >>> exposure_warning("0.0.0.0", "my-ep")[:40]
    'endpoint my-ep listens on 0.0.0.0 (all i'
    """
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        if host == "localhost":
            return None
    where = "all interfaces" if host in ("0.0.0.0", "::") else "a non-loopback address"
    return (
        f"endpoint {endpoint} listens on {host} ({where}): other machines can reach it over "
        "plain HTTP, guarded by its keys only; set `host: 127.0.0.1` in the workspace config "
        "to keep it on this machine, or put a TLS proxy in front"
    )
