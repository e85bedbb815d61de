"""Shared fixtures: an isolated workspace per test, the offline assets from the user cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace folder, also exported as CHATTUNE_WORKSPACE for CLI subprocesses."""
    path = tmp_path / "ws"
    monkeypatch.setenv("CHATTUNE_WORKSPACE", str(path))
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
