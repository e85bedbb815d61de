"""Shared fixtures: an isolated workspace per test (SQLite, or PostgreSQL where a module asks
for both), the offline assets from the user cache."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

# The run fails, naming them, for processes it leaves running (and kills them).
from tests.leftovers import (  # noqa: F401
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

# Put `pytestmark = BOTH_DATABASES` in a module to run its `workspace` tests on SQLite and,
# under `make test-all` (marker postgres), on a real PostgreSQL server the suite starts.
BOTH_DATABASES = pytest.mark.parametrize(
    "workspace",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])],
    indirect=True,
)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real PostgreSQL server for the session (Debian's package; `make test-all`)."""
    from tests.postgres import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


@pytest.fixture
def database_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata database: SQLite file, or a new PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "postgres":
        server = request.getfixturevalue("postgres_server")
        name = f"ct_{secrets.token_hex(4)}"
        server.create_database(f"{name}_mlflow")
        return server.create_database(name)
    return f"sqlite:///{tmp_path / 'chattune.db'}"


@pytest.fixture
def workspace(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh workspace folder, also exported as CHATTUNE_WORKSPACE for CLI subprocesses."""
    path = tmp_path / "ws"
    monkeypatch.setenv("CHATTUNE_WORKSPACE", str(path))
    if getattr(request, "param", "sqlite") == "postgres":
        from chattune.workspace import Workspace

        server = request.getfixturevalue("postgres_server")
        name = f"ct_{secrets.token_hex(4)}"
        server.create_database(f"{name}_mlflow")
        Workspace.init(path, database=server.create_database(name))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """tiny-random-phi3 (Phi-3 architecture and tokenizer), fetched by `make setup`."""
    from chattune.catalog import assets

    return assets.fetch(["tiny-random-phi3"])["tiny-random-phi3"]


@pytest.fixture(scope="session")
def ultrachat_sample_dir() -> Path:
    """The ultrachat-sample dataset folder (hub layout), fetched by `make setup`."""
    from chattune.catalog import assets

    return assets.fetch(["ultrachat-sample"])["ultrachat-sample"]


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
