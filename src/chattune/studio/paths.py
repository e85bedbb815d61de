"""The folders the studio may read data from: the folder it runs in and each
``--data-dir``. A path outside them (absolute, ``../``, or a link that leads out) gets the
same answer as a file that does not exist, so an answer never tells whether it exists."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request

from chattune.errors import NotFoundError


def roots_of(request: Request) -> list[Path]:
    roots: list[Path] = request.app.state.data_roots
    return roots


def not_found(given: str, roots: list[Path]) -> NotFoundError:
    """One answer for missing, outside and unreadable alike (nothing about which)."""
    folders = ", ".join(str(r) for r in roots)
    return NotFoundError(
        f"data file {given}: no such file in the studio's data folders ({folders})",
        "give a path inside them (relative to the first), or restart the studio with "
        "`chattune studio --data-dir DIR`",
    )


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve(given: str, roots: list[Path], field: str = "") -> Path:
    """``given`` (relative to the first root) as a real file inside a root, else the same
    :class:`NotFoundError` whatever the reason. ``field`` prefixes the message (``data.train``)."""
    try:
        path = Path(given).expanduser()
        path = (path if path.is_absolute() else roots[0] / path).resolve()
        ok = inside(path, roots) and path.is_file()
    except (OSError, RuntimeError, ValueError):
        ok = False
    if not ok:
        error = not_found(given, roots)
        if field:
            error = NotFoundError(f"{field}: {error.message}", error.hint)
        raise error
    return path


def data_path(request: Request, given: str, field: str = "") -> Path:
    return resolve(given, roots_of(request), field)


def looks_like_path(value: str) -> bool:
    """A job's ``model`` that names a local folder (not a catalog name, ref or hf://)."""
    return not value.startswith("hf://") and (
        "/" in value or value.startswith((".", "~")) or Path(value).is_absolute()
    )


def folder_path(request: Request, given: str, field: str) -> Path:
    """A local model folder inside the data folders (else the same not-found answer)."""
    roots = roots_of(request)
    try:
        path = Path(given).expanduser()
        path = (path if path.is_absolute() else roots[0] / path).resolve()
        ok = inside(path, roots) and path.is_dir()
    except (OSError, RuntimeError, ValueError):
        ok = False
    if not ok:
        error = not_found(given, roots)
        raise NotFoundError(f"{field}: {error.message}", error.hint)
    return path
