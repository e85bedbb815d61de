"""The sha256 users can check: that of a file's bytes, exactly what ``sha256sum`` prints;
and the kind check every data path passes before anything opens it."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from chattune.errors import NotFoundError, ValidationError


def check_data_path(path: Path, folder_ok: bool = True) -> None:
    """A data path is a regular file (or a dataset folder): a FIFO, socket or device, or a
    link to one, would block the reader forever or never end (``/dev/zero``)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        raise NotFoundError(f"no data file or folder at {path}", "check the path") from None
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return
    kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
    raise ValidationError(
        f"{path}: {kind}", "pass a data file (.jsonl, .json, .parquet, .csv) or a dataset folder"
    )


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"hi\\n")
    >>> file_sha256(f.name)[:12]
    '98ea6e4f216f'
    >>> os.unlink(f.name)
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
