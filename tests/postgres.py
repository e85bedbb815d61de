"""A throwaway PostgreSQL server for tests: fresh data folder, free port on 127.0.0.1.

`start_postgres(base)` runs Debian's `postgresql` binaries (initdb, pg_ctl) in a new folder
under `base`, waits until the server accepts TCP connections, creates the database
`chattune` and returns a `PostgresServer`; `stop()` (also run at interpreter exit)
kills it with `pg_ctl stop -m immediate` and checks that no server process is left.

initdb and postgres refuse to run as root: as root, the server runs as the unprivileged
`postgres` user that the Debian package creates (or `nobody`), in a folder it owns. As a
normal user, it runs as that user. Connections: password (scram) on 127.0.0.1, trust on
the Unix socket, which lives in the server folder (its path must stay under ~100 bytes).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install postgresql` (what `make test-all` does)"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")  # Debian package postgresql-NN
CLIENT_BINARIES = ("pg_isready", "createdb")  # Debian package postgresql-client-NN
UNPRIVILEGED_USERS = ("postgres", "nobody")  # whom a root test process runs the server as
SUPERUSER = "postgres"  # the database role the URIs log in as
MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes; the socket is <dir>/.s.PGSQL.<port>
# Settings for a disposable server: no durability, small memory, quick start and stop.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "max_wal_size": "256MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
}
INITDB_OPTIONS = (
    "--auth-local=trust",  # the socket folder is private to the server's user
    "--auth-host=scram-sha-256",  # 127.0.0.1: the password is in the URI
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
)
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresNotInstalled(RuntimeError):
    """The PostgreSQL server binaries are not on this machine."""


@dataclass(frozen=True)
class _Identity:
    """The OS user the server runs as; `uid is None` means this process's own user."""

    name: str
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()

    def kwargs(self) -> dict[str, object]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


@dataclass(eq=False)
class PostgresServer:
    bindir: Path
    root: Path  # the server's folder: data/, socket/, server.log
    port: int
    pid: int  # the postmaster
    password: str = field(repr=False)
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    os_user: str = ""
    owns_root: bool = False  # root is a private temp folder, removed by stop()
    _identity: _Identity = field(default_factory=lambda: _Identity(""), repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def uri(self, database: str = "chattune", *, driver: str | None = "psycopg") -> str:
        """SQLAlchemy URI (`postgresql+psycopg://...`); `driver=None` gives a libpq URI."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name` and return its SQLAlchemy URI."""
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use letters, digits and _")
        result = subprocess.run(
            [str(self.bindir / "createdb"), *self._client_args(), "--no-password", name],
            env=_client_env(self.password),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode:
            raise RuntimeError(f"createdb {name} failed: {result.stderr.strip()}")
        return self.uri(name)

    def _client_args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def running(self) -> bool:
        return not self._stopped and _alive(self.pid)

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (immediate mode) and wait until all its processes are gone."""
        if self._stopped:
            return
        atexit.unregister(self.stop)
        pids = [self.pid, *_children(self.pid)]
        if _alive(self.pid):
            _run(
                [
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    str(int(timeout)),
                ],
                self._identity,
                cwd=self.root,
                timeout=timeout + 10,
                check=False,
            )
        left = _wait_gone(pids, timeout=10)
        for pid in left:  # pg_ctl failed or hung: finish the job
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        left = _wait_gone(left, timeout=10)
        self._stopped = True
        if left:
            raise RuntimeError(f"PostgreSQL processes still running after stop: {left}")
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl, postgres, pg_isready and createdb.

    Debian puts them in /usr/lib/postgresql/<major>/bin, not on PATH: the highest major
    version with all of them wins; otherwise the folder of `pg_ctl` on PATH.
    """
    needed = SERVER_BINARIES + CLIENT_BINARIES

    def complete(folder: Path) -> bool:
        return all(os.access(folder / name, os.X_OK) for name in needed)

    def version(folder: str) -> tuple[int, ...]:
        major = Path(folder).parent.name
        return tuple(int(p) for p in major.split(".") if p.isdigit())

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if complete(Path(folder)):
            return Path(folder)
    on_path = shutil.which("pg_ctl")
    if on_path and complete(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    missing = [n for n in needed if not shutil.which(n)]
    raise PostgresNotInstalled(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH; "
        f"missing: {', '.join(missing) or 'a folder holding all of ' + ', '.join(needed)}): "
        + INSTALL_HINT
    )


def start_postgres(base: Path, timeout: float = 60) -> PostgresServer:
    """Start a fresh server in a new folder under `base` and create database `chattune`.

    Falls back to a private folder in /tmp when `base` is not usable by the server's
    user (as root, pytest's tmp_path is 0700 root) or its path is too long for the socket.
    """
    bindir = find_bindir()
    identity = _server_identity()
    root, owned = _server_root(Path(base), identity)
    deadline = time.monotonic() + timeout
    try:
        password = secrets.token_hex(16)
        _initdb(bindir, root, identity, password, timeout)
        port, pid = _start(bindir, root, identity, deadline)
        server = PostgresServer(
            bindir=bindir,
            root=root,
            port=port,
            pid=pid,
            password=password,
            os_user=identity.name,
            owns_root=owned,
            _identity=identity,
        )
    except BaseException:
        _kill_leftover(root)
        if owned:
            shutil.rmtree(root, ignore_errors=True)
        raise
    atexit.register(server.stop)
    try:
        _wait_ready(server, deadline)
        server.create_database("chattune")
    except BaseException:
        server.stop()
        raise
    return server


def _server_identity() -> _Identity:
    if os.geteuid() != 0:
        return _Identity(pwd.getpwuid(os.geteuid()).pw_name)
    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return _Identity(name, entry.pw_uid, entry.pw_gid, groups)
    raise PostgresNotInstalled(
        "running as root, and initdb refuses root: no unprivileged user "
        f"({' or '.join(UNPRIVILEGED_USERS)}) to run the server as; " + INSTALL_HINT
    )


def _server_root(base: Path, identity: _Identity) -> tuple[Path, bool]:
    """A new empty folder owned by the server's user: under `base` if it can, else /tmp."""
    base.mkdir(parents=True, exist_ok=True)
    fits = len(str(base.resolve())) + len("/pg-XXXXXXXX/socket/.s.PGSQL.65535") <= MAX_SOCKET_PATH
    if fits:
        root = _owned_folder(base, "pg-", identity)
        if _usable_by(root, identity):
            return root, False
        root.rmdir()  # e.g. root's tmp_path is 0700: the server's user cannot reach it
    return _owned_folder(Path("/tmp"), "chattune-pg-", identity), True


def _owned_folder(parent: Path, prefix: str, identity: _Identity) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if identity.uid is not None:
        os.chown(folder, identity.uid, identity.gid)
    return folder


def _usable_by(folder: Path, identity: _Identity) -> bool:
    if identity.uid is None:
        return os.access(folder, os.W_OK | os.X_OK)
    probe = _run(["test", "-w", str(folder), "-a", "-x", str(folder)], identity, check=False)
    return probe.returncode == 0


def _initdb(bindir: Path, root: Path, identity: _Identity, password: str, timeout: float) -> None:
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if identity.uid is not None:
        os.chown(pwfile, identity.uid, identity.gid)
    pwfile.chmod(0o600)
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            SUPERUSER,
            *INITDB_OPTIONS,
            f"--pwfile={pwfile}",
        ],
        identity,
        cwd=root,
        timeout=timeout,
    )
    pwfile.unlink()
    socket_dir = root / "socket"
    socket_dir.mkdir(mode=0o700)
    if identity.uid is not None:
        os.chown(socket_dir, identity.uid, identity.gid)
    settings = dict(SETTINGS, unix_socket_directories=_quote(str(socket_dir)))
    conf = root / "data" / "postgresql.conf"
    with conf.open("a") as out:  # appended lines override initdb's defaults
        out.write("\n# tests/postgres.py\n")
        out.writelines(f"{key} = {value}\n" for key, value in settings.items())


def _start(bindir: Path, root: Path, identity: _Identity, deadline: float) -> tuple[int, int]:
    """Start the server on a free port (retried if another process takes it first)."""
    log = root / "server.log"
    for _attempt in range(5):
        port = _free_port()
        wait = max(1, int(deadline - time.monotonic()))
        offset = log.stat().st_size if log.exists() else 0
        result = _run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(root / "data"),
                "-l",
                str(log),
                "-o",
                f"-p {port}",
                "-w",
                "-t",
                str(wait),
            ],
            identity,
            cwd=root,
            timeout=wait + 10,
            check=False,
        )
        if result.returncode == 0:
            return port, _postmaster_pid(root / "data")
        text = _tail(log, offset=offset)
        if "could not bind" in text or "already in use" in text:
            _kill_leftover(root)
            continue
        raise RuntimeError(
            f"pg_ctl start failed (exit {result.returncode}): {result.stdout}{result.stderr}\n"
            f"--- {log} ---\n{text}"
        )
    raise RuntimeError(f"no free port found for PostgreSQL after 5 tries:\n{_tail(log)}")


def _wait_ready(server: PostgresServer, deadline: float) -> None:
    while True:
        ready = subprocess.run(
            [
                str(server.bindir / "pg_isready"),
                *server._client_args(),
                "-d",
                "postgres",
                "-t",
                "2",
            ],
            env=_client_env(server.password),
            capture_output=True,
            text=True,
            timeout=10,
        )
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline or not _alive(server.pid):
            raise RuntimeError(
                f"PostgreSQL on port {server.port} not ready: {ready.stdout.strip()}\n"
                f"--- {server.log_path} ---\n{_tail(server.log_path)}"
            )
        time.sleep(0.1)


def _run(
    cmd: list[str],
    identity: _Identity,
    *,
    cwd: Path | str = "/",
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` as the server's user. pg_ctl start needs `-l`, else the server keeps
    the output pipes open and this call would hang."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=str(cwd), LC_ALL="C", LANG="C")
    if identity.uid is not None:
        env.update(USER=identity.name, LOGNAME=identity.name)
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        **identity.kwargs(),  # type: ignore[arg-type]
    )
    if check and result.returncode:
        raise RuntimeError(
            f"{Path(cmd[0]).name} failed (exit {result.returncode}) as user "
            f"{identity.name}: {result.stdout}{result.stderr}"
        )
    return result


def _client_env(password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def _kill_leftover(root: Path) -> None:
    """SIGKILL a postmaster (and its children) that a failed start may have left."""
    try:
        pid = _postmaster_pid(root / "data")
    except (OSError, ValueError):
        return
    pids = [pid, *_children(pid)] if _alive(pid) else []
    for each in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, signal.SIGKILL)
    _wait_gone(pids, timeout=10)


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as gone (PID 1 may be slow to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _tail(path: Path, lines: int = 30, offset: int = 0) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
    except OSError:
        return "(no log)"
