"""Offline assets: corrupt or partial folders are rebuilt; download failures are one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from chattune.catalog import assets, convert
from chattune.errors import AssetError, NotFoundError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def builds(cache: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Fake download + converter for tiny-random-phi3; records each build."""
    made: list[Path] = []
    archive = cache / "fake.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"x")

    def build(_src: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"w" * 100)
        made.append(out)

    monkeypatch.setattr(assets, "download", lambda _a: archive)
    monkeypatch.setattr(convert, "tiny_random_phi3", build)
    return made


def test_fetch_is_idempotent(builds: list[Path]) -> None:
    path = assets.fetch(["tiny-random-phi3"])["tiny-random-phi3"]
    assets.fetch(["tiny-random-phi3"])
    assert len(builds) == 1
    assert assets.is_complete(path)
    assert assets.require("tiny-random-phi3") == path


def test_truncated_file_is_detected_and_rebuilt(builds: list[Path]) -> None:
    path = assets.fetch(["tiny-random-phi3"])["tiny-random-phi3"]
    (path / "model.safetensors").write_bytes(b"w" * 10)
    assert not assets.is_complete(path)
    assets.fetch(["tiny-random-phi3"])
    assert len(builds) == 2
    assert (path / "model.safetensors").stat().st_size == 100


def test_killed_build_leaves_nothing_half_written(cache: Path, monkeypatch) -> None:
    def broken(_src: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(assets, "download", lambda _a: cache / "x")
    monkeypatch.setattr(convert, "tiny_random_phi3", broken)
    with pytest.raises(KeyboardInterrupt):
        assets.fetch(["tiny-random-phi3"])
    assert not assets.asset_path("tiny-random-phi3").exists()
    assert list((cache / "models").iterdir()) == []
    with pytest.raises(NotFoundError, match="run `chattune assets fetch`"):
        assets.require("tiny-random-phi3")


def test_unknown_asset_is_named() -> None:
    with pytest.raises(NotFoundError, match="unknown offline asset 'nope'"):
        assets.fetch(["nope"])


def test_unreachable_index_is_one_line(cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found\n")
    monkeypatch.setattr(assets.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(AssetError) as err:
        assets.download(assets.LLAMAFACTORY)
    assert str(err.value).startswith(
        "could not download llamafactory==0.9.5 from the package index: "
        "ERROR: No matching distribution found"
    )
    assert not (cache / "downloads" / assets.LLAMAFACTORY.filename).exists()


def test_wrong_file_from_the_index_is_rejected(cache: Path, monkeypatch) -> None:
    def serve(_archive: assets.Archive, dest: Path) -> None:
        dest.write_bytes(b"not the real file")

    monkeypatch.setattr(assets, "_download_simple", serve)
    with pytest.raises(AssetError, match="sha256 does not match"):
        assets.download(assets.LLAMAFACTORY)
    assert not (cache / "downloads" / assets.LLAMAFACTORY.filename).exists()


def test_tiny_random_phi3_is_byte_identical_on_every_build(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import hashlib

    convert.tiny_random_phi3(assets.download(assets.LLAMA_CPP), tmp_path)
    for built in sorted(tmp_path.iterdir()):
        fetched = tiny_model_dir / built.name
        assert (
            hashlib.sha256(built.read_bytes()).digest()
            == hashlib.sha256(fetched.read_bytes()).digest()
        ), built.name
