"""A real endpoint with one tiny-model deployment taking all traffic, deleted afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace


@contextmanager
def deployed(ws: Workspace, model_dir: Path, name: str) -> Iterator[EndpointsAPI]:
    """Endpoint ``name`` in ``ws`` with deployment ``demo`` of ``model_dir`` at 100%."""
    endpoints = EndpointsAPI(ws, resolve_model=lambda ref: (ref, model_dir))
    try:
        endpoints.create(name)
        endpoints.create_deployment(name, "demo", "tiny:1")
        endpoints.update(name, traffic={"demo": 100})
        yield endpoints
    finally:  # never leave processes behind, even on failure
        for info in endpoints.list():
            endpoints.delete(info.name)
