"""The workspace: one folder holding config, metadata database, MLflow store and artifacts.

Found the same way by every command: an explicit path, else ``$CHATTUNE_WORKSPACE``, else
``./.chattune``. Created on first use (like ``mlruns/``); ``chattune init`` creates it up front.

Layout::

    .chattune/
      config.yaml        workspace settings (database URI without its password, host)
      database.password  the database password `init --database` was given (0600)
      chattune.db        metadata: jobs, stages, registered models, endpoints (SQLite by
                         default; config `database:` may name a server database instead)
      mlflow.db          MLflow tracking store (SQLite backend); artifacts in mlartifacts/
      jobs/NAME/         one folder per pipeline job: spec, logs, stage outputs
      models/NAME/VER/   registered model artifacts (MLflow-format models)
      endpoints/NAME/    endpoint keys (0600), gateway and worker logs
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import yaml

from chattune.errors import ValidationError

DEFAULT_DIR = ".chattune"
PASSWORD_FILE = "database.password"
ENV_VAR = "CHATTUNE_WORKSPACE"
TELEMETRY_VAR = "CHATTUNE_TELEMETRY"
# Switches that keep the libraries chattune runs from reporting usage (MLflow, Hugging Face,
# Ray, vLLM and anything honouring DO_NOT_TRACK); `CHATTUNE_TELEMETRY=1` leaves them unset.
NO_TELEMETRY = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "VLLM_NO_USAGE_STATS": "1",
}


@dataclass(frozen=True)
class Workspace:
    """A chattune workspace folder. Use :meth:`find` or :meth:`init` to get one."""

    root: Path

    @classmethod
    def find(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace at ``path``, else ``$CHATTUNE_WORKSPACE``, else ``./.chattune``.

        Nothing is created yet: the folder appears on first write (:meth:`ensure`), like
        ``mlruns/``, so read-only commands leave no trace.
        """
        root = Path(path or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ValidationError(
                f"workspace path {root} is a file", "pass a folder to `chattune init DIR`"
            )
        return cls(root)

    @classmethod
    def init(
        cls, path: str | os.PathLike[str] | None = None, database: str | None = None
    ) -> Workspace:
        """Create (or open) the workspace folder at ``path``; idempotent.

        ``database`` is the metadata database URI written to a new workspace's config
        (default: ``sqlite:///<root>/chattune.db``); the store creates its tables on first use.
        """
        ws = cls.find(path)
        stored, password = split_password(database) if database else (None, None)
        if stored and ws.config_path.exists() and ws.database_uri != stored:
            raise ValidationError(
                f"workspace {ws.root} already uses database {ws.database_uri}",
                f"edit `database:` in {ws.config_path} to move it",
            )
        ws.ensure(stored)
        if password is not None:
            ws.keep_password(password)
        return ws

    def ensure(self, database: str | None = None) -> None:
        """Create the folders and a default config if they are missing; idempotent."""
        for sub in ("jobs", "models", "endpoints", "mlartifacts"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            config = {"database": database or f"sqlite:///{self.db_path}", "host": "127.0.0.1"}
            write_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def keep_password(self, password: str) -> None:
        """Store the database password in ``database.password`` (0600), named by the config's
        ``database_password_file``; the config itself never holds it."""
        write_atomic(self.root / PASSWORD_FILE, password + "\n", mode=0o600)
        config = self.config
        if config.get("database_password_file") != PASSWORD_FILE:
            config["database_password_file"] = PASSWORD_FILE
            write_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def db_path(self) -> Path:
        return self.root / "chattune.db"

    @property
    def config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            return {}
        return yaml.safe_load(self.config_path.read_text()) or {}

    @property
    def database_uri(self) -> str:
        """Metadata database URI (config ``database``), without any password: safe to show."""
        return split_password(self._database)[0]

    @property
    def _database(self) -> str:
        return str(self.config.get("database") or f"sqlite:///{self.db_path}")

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking URI: ``mlflow ui --backend-store-uri <this>`` shows every run.

        Config ``mlflow`` when set; else it follows ``database``: an SQLite file next to the
        metadata, or a database named ``<name>_mlflow`` on the same PostgreSQL server.
        Without any password (see :attr:`mlflow_connect_uri`).
        """
        return split_password(self._mlflow)[0]

    @property
    def _mlflow(self) -> str:
        if self.config.get("mlflow"):
            return str(self.config["mlflow"])
        database = self.database_uri
        if database.startswith("postgresql"):
            base, _, query = database.partition("?")
            return f"{base}_mlflow" + (f"?{query}" if query else "")
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def log_rotation(self) -> tuple[int, int]:
        """``(max_bytes, keep)`` of the gateway, worker and job logs: config ``logs:
        {max_mb: 20, keep: 3}`` (a log past ``max_mb`` moves to ``.1``, ``.1`` to ``.2``, ...,
        and ``keep`` rotated files stay)."""
        logs = self.config.get("logs") or {}
        max_mb = float(logs.get("max_mb", DEFAULT_LOG_MAX_MB))
        keep = int(logs.get("keep", DEFAULT_LOG_KEEP))
        return max(int(max_mb * 2**20), 1024), max(keep, 0)

    @property
    def database_connect_uri(self) -> str:
        """:attr:`database_uri` with the password put back, for connecting only: never
        print or log it."""
        return with_password(self._database, self.database_password())

    @property
    def mlflow_connect_uri(self) -> str:
        """:attr:`mlflow_uri` with the database password, for connecting only."""
        return with_password(self._mlflow, self.database_password())

    def password_source(self) -> str | None:
        """Where the database password comes from (never the password itself)."""
        config = self.config
        if config.get("database_password_env"):
            return f"${config['database_password_env']}"
        if config.get("database_password_file"):
            return f"{self.root / str(config['database_password_file'])} (mode 0600)"
        if self.database_uri.startswith("postgresql"):
            return "PGPASSWORD or ~/.pgpass (libpq), if the server asks for one"
        return None

    def database_password(self) -> str | None:
        """The database password: the variable the config's ``database_password_env``
        names, else the config's ``database_password_file`` (relative to the workspace,
        mode 0600), else one written in the URI itself (older configs); None leaves it to
        the driver (libpq reads ``PGPASSWORD`` and ``~/.pgpass``)."""
        config = self.config
        if config.get("database_password_env"):
            name = str(config["database_password_env"])
            if name not in os.environ:
                raise ValidationError(
                    f"{self.config_path}: database_password_env names ${name}, which is not set",
                    f"export {name}=..., or remove database_password_env to use PGPASSWORD",
                )
            return os.environ[name]
        if config.get("database_password_file"):
            return _read_secret(self.root / str(config["database_password_file"]))
        return split_password(self._database)[1]

    @property
    def artifact_root(self) -> str:
        return (self.root / "mlartifacts").as_uri()

    def job_dir(self, name: str) -> Path:
        return self.root / "jobs" / name

    def model_dir(self, name: str, version: str) -> Path:
        return self.root / "models" / name / version

    def endpoint_dir(self, name: str) -> Path:
        return self.root / "endpoints" / name


DEFAULT_LOG_MAX_MB = 20
DEFAULT_LOG_KEEP = 3


def rotate_log(path: Path, max_bytes: int, keep: int) -> bool:
    """Rotate ``path`` when it is over ``max_bytes``: ``path.N`` moves to ``path.N+1`` (past
    ``keep``: deleted), a copy of ``path`` becomes ``path.1``, and ``path`` is truncated in
    place (copy-truncate), because the processes writing it hold it open in append mode (a
    rename would leave them writing to the rotated file). True when it rotated.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "w.log"
    >>> _ = log.write_text("x" * 2048)
    >>> rotate_log(log, 1024, 2), log.stat().st_size, (log.parent / "w.log.1").stat().st_size
    (True, 0, 2048)
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except OSError:
        return False
    for n in range(keep, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            if n == keep:
                older.unlink()
            else:
                os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    if keep > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as f:
        f.truncate(0)
    return True


def split_password(uri: str) -> tuple[str, str | None]:
    """``(uri without its password, password or None)``; URIs without one are unchanged."""
    scheme, sep, rest = uri.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return uri, None
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{user}@{hostport}{slash}{path}", unquote(password)


def with_password(uri: str, password: str | None) -> str:
    """``uri`` with ``password`` set (a server URI that has none only)."""
    if password is None or not uri.startswith("postgresql"):
        return uri
    scheme, _, rest = uri.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, _, hostport = netloc.rpartition("@")
    if ":" in userinfo:
        return uri
    return f"{scheme}://{userinfo}:{quote(password, safe='')}@{hostport}{slash}{path}"


def redact(text: str, uri: str) -> str:
    """``text`` with the password of ``uri`` (if any, as written or decoded) as ``***``."""
    password = split_password(uri)[1]
    if not password:
        return text
    return text.replace(password, "***").replace(quote(password, safe=""), "***")


def _read_secret(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        secret = path.read_text().rstrip("\n")
    except OSError as exc:
        raise ValidationError(
            f"database password file {path} cannot be read ({exc.strerror})",
            "write the password there (chmod 600), or set database_password_env in config.yaml",
        ) from None
    if mode & 0o077:
        raise ValidationError(
            f"database password file {path} is readable by others (mode {mode & 0o777:o})",
            f"chmod 600 {path}",
        )
    return secret


def cache_root() -> Path:
    """``$CHATTUNE_CACHE`` or the user cache dir (``~/.cache/chattune`` on Linux)."""
    env = os.environ.get("CHATTUNE_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("chattune"))


def private_environment(environ: dict[str, str] | None = None) -> None:
    """Nothing leaves the machine, nothing lands outside the workspace and the cache.

    Run when ``chattune`` is imported, before MLflow, matplotlib or torch are: telemetry
    off (unless ``CHATTUNE_TELEMETRY=1``), and the caches matplotlib and torch would put in
    ``~/.config`` or ``~/.cache/torch`` go under the user cache dir instead. A variable the
    user has set already is left as it is.
    """
    env = os.environ if environ is None else environ
    if env.get(TELEMETRY_VAR, "").lower() not in ("1", "true", "yes", "on"):
        for key, value in NO_TELEMETRY.items():
            env.setdefault(key, value)
    cache = cache_root()
    for key, sub in (
        ("MPLCONFIGDIR", "matplotlib"),
        ("TORCHINDUCTOR_CACHE_DIR", "torchinductor"),
        ("TRITON_CACHE_DIR", "triton"),
        ("TORCH_HOME", "torch"),
    ):
        env.setdefault(key, str(cache / sub))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs (between processes of this machine)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode if mode is not None else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
