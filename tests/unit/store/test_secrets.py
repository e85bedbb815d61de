"""The database password: `init --database postgresql://user:PW@...` keeps PW in a 0600 file,
never in config.yaml, never in what the CLI prints (success or error); the connection gets it
back from that file, a variable the config names, or libpq's PGPASSWORD / ~/.pgpass."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from tests.e2e.cli import chattune

from chattune.errors import ValidationError
from chattune.workspace import Workspace, split_password

PASSWORD = "s3cret-Pw%40x"  # URI-encoded "@" inside: decoded it is "s3cret-Pw@x"
DECODED = "s3cret-Pw@x"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uri(port: int = 5432) -> str:
    return f"postgresql://alice:{PASSWORD}@127.0.0.1:{port}/teamdb"


def test_init_keeps_the_password_out_of_the_config(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", database=uri())
    config = ws.config_path.read_text()
    assert DECODED not in config and PASSWORD not in config
    assert ws.database_uri == "postgresql://alice@127.0.0.1:5432/teamdb"
    secret = tmp_path / "ws" / "database.password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text() == DECODED + "\n"
    assert split_password(ws.database_connect_uri)[1] == DECODED
    assert split_password(ws.mlflow_connect_uri) == (
        "postgresql://alice@127.0.0.1:5432/teamdb_mlflow",
        DECODED,
    )
    assert DECODED not in ws.mlflow_uri
    Workspace.init(tmp_path / "ws", database=uri())  # same database again: fine


def test_password_from_a_named_variable_or_libpq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.init(tmp_path / "ws", database="postgresql://alice@db/teamdb")
    assert ws.database_password() is None  # left to libpq: PGPASSWORD, ~/.pgpass
    assert ws.database_connect_uri == "postgresql://alice@db/teamdb"
    ws.config_path.write_text(ws.config_path.read_text() + "database_password_env: TEAM_PW\n")
    with pytest.raises(ValidationError, match=r"\$TEAM_PW, which is not set"):
        ws.database_password()
    monkeypatch.setenv("TEAM_PW", "from-env")
    assert split_password(ws.database_connect_uri)[1] == "from-env"


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", database=uri())
    os.chmod(tmp_path / "ws" / "database.password", 0o644)
    with pytest.raises(ValidationError, match=r"readable by others .*chmod 600"):
        ws.database_connect_uri  # noqa: B018


def test_cli_never_prints_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="PostgreSQL driver: the postgres extra (make test-all)")
    # Nothing listens on the port: init fails connecting, and says so without the password.
    proc = chattune("init", str(tmp_path / "ws"), "--database", uri(closed_port()), check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "127.0.0.1" in out and "alice" in out
    assert DECODED not in out and PASSWORD not in out and "s3cret" not in out
    assert "s3cret" not in (tmp_path / "ws" / "config.yaml").read_text()


@pytest.mark.postgres
@pytest.mark.slow
def test_real_server_through_the_password_file_and_pgpassword(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.postgres import start_postgres

    with start_postgres(tmp_path / "pg") as server:
        full = server.uri("teamdb", driver=None)
        done = chattune("init", str(tmp_path / "ws"), "--database", full, "--json")
        assert server.password not in done.stdout + done.stderr
        assert server.password not in (tmp_path / "ws" / "config.yaml").read_text()
        monkeypatch.setenv("CHATTUNE_WORKSPACE", str(tmp_path / "ws"))
        assert chattune("jobs", "list").returncode == 0  # connects through the file
        (tmp_path / "ws" / "database.password").unlink()
        (tmp_path / "ws" / "config.yaml").write_text(
            f"database: {split_password(full)[0]}\nhost: 127.0.0.1\n"
        )
        failed = chattune("jobs", "list", check=False)
        assert failed.returncode != 0 and server.password not in failed.stdout + failed.stderr
        monkeypatch.setenv("PGPASSWORD", server.password)
        assert chattune("jobs", "list").returncode == 0  # libpq's own variable
