"""Data JSON routes: the workspace's data files, validation (problems with line numbers),
stats, the token-length histogram and the first conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from chattune.studio.deps import client_of

router = APIRouter(prefix="/api/data")


class FileRequest(BaseModel):
    path: str
    model: str | None = None
    rows: int = 5


def _path(request: Request, path: str) -> Path:
    """A data path as the user wrote it: relative to the folder the studio runs in."""
    given = Path(path).expanduser()
    return given if given.is_absolute() else request.app.state.root / given


@router.get("/files")
def files(request: Request) -> list[str]:
    return client_of(request).data.files(request.app.state.root)


@router.post("/validate")
def validate(request: Request, body: FileRequest) -> dict[str, Any]:
    """The full report: ``ok``, rows, format, every problem (line, field, message)."""
    report = client_of(request).data.validate(_path(request, body.path), check=False)
    return {**report, "path": body.path}


@router.post("/show")
def show(request: Request, body: FileRequest) -> dict[str, Any]:
    """Stats, the first ``rows`` conversations and, with a model, the token histogram."""
    data = client_of(request).data
    path = _path(request, body.path)
    found = data.show(path, n=body.rows)
    if body.model:
        found["histogram"] = data.token_lengths(path, body.model)
    return {**found, "path": body.path}
