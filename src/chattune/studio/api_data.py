"""Data JSON routes: the data files, validation (problems with line numbers), stats, the
token-length histogram and the first conversations. Only files inside the studio's data
folders are read (:mod:`chattune.studio.paths`); every error is JSON, never a bare 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from chattune.errors import ChattuneError, ValidationError
from chattune.studio.deps import client_of
from chattune.studio.paths import data_path, roots_of

router = APIRouter(prefix="/api/data")


class FileRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    model: str | None = None
    rows: int = Field(5, ge=1, le=200)


def unreadable(given: str, exc: Exception) -> ValidationError:
    """A file inside the data folders that the data layer could not read (one line)."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ValidationError(
        f"data file {given}: could not read it ({type(exc).__name__}: {first})"[:300],
        "give a chat data file (jsonl, json, parquet or csv); `chattune data validate` says more",
    )


@router.get("/files")
def files(request: Request) -> list[str]:
    return client_of(request).data.files(roots_of(request)[0])


@router.post("/validate")
def validate(request: Request, body: FileRequest) -> dict[str, Any]:
    """The full report: ``ok``, rows, format, every problem (line, field, message)."""
    path = data_path(request, body.path)
    try:
        report = client_of(request).data.validate(path, check=False)
    except ChattuneError:
        raise
    except Exception as exc:  # a file the data layer trips on: still a one-line JSON error
        raise unreadable(body.path, exc) from exc
    return {**report, "path": body.path}


def _show(request: Request, path: Path, body: FileRequest) -> dict[str, Any]:
    data = client_of(request).data
    found = data.show(path, n=body.rows)
    if body.model:
        found["histogram"] = data.token_lengths(path, body.model)
    return found


@router.post("/show")
def show(request: Request, body: FileRequest) -> dict[str, Any]:
    """Stats, the first ``rows`` conversations and, with a model, the token histogram."""
    path = data_path(request, body.path)
    try:
        found = _show(request, path, body)
    except ChattuneError:
        raise
    except Exception as exc:
        raise unreadable(body.path, exc) from exc
    return {**found, "path": body.path}
