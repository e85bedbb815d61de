"""Models JSON routes: catalog, registry versions, labels, register a job, lineage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from chattune.studio.deps import client_of, plain

router = APIRouter(prefix="/api/models")


class RegisterRequest(BaseModel):
    job: str
    name: str
    version: str | None = None


class LabelRequest(BaseModel):
    label: str


class ArchiveRequest(BaseModel):
    archived: bool = True


@router.get("/catalog")
def catalog(request: Request) -> list[dict[str, Any]]:
    return [
        {**c.model_dump(mode="json"), "size": c.parameters}
        for c in client_of(request).models.catalog()
    ]


@router.get("")
def registry(request: Request, archived: bool = False) -> list[dict[str, Any]]:
    """Registered versions (with ``archived=true``: the archived ones too)."""
    return [plain(m) | {"ref": m.ref} for m in client_of(request).models.list(archived=archived)]


@router.post("")
def register(request: Request, body: RegisterRequest) -> dict[str, Any]:
    model = client_of(request).models.register(body.job, body.name, body.version)
    return plain(model) | {"ref": model.ref}


@router.post("/{name}/{version}/labels")
def label(request: Request, name: str, version: str, body: LabelRequest) -> dict[str, Any]:
    model = client_of(request).models.label(name, version, body.label)
    return plain(model) | {"ref": model.ref}


def served_by(request: Request, ref: str) -> list[dict[str, Any]]:
    """The deployments that serve ``ref`` (the head of its lineage chain)."""
    endpoints = client_of(request).endpoints
    found = []
    for endpoint in endpoints.list():
        for deployment in endpoints.list_deployments(endpoint.name):
            if deployment.model == ref:
                weight = endpoint.traffic.get(deployment.name, 0)
                found.append(
                    {"endpoint": endpoint.name, "deployment": deployment.name, "traffic": weight}
                )
    return found


@router.get("/{name}/{version}/lineage")
def lineage(request: Request, name: str, version: str) -> dict[str, Any]:
    """deployment → version → job → base model → data hashes (+ parameters, metrics)."""
    found = client_of(request).models.lineage(name, version)
    return {**found, "deployments": served_by(request, found["model"]["ref"])}


@router.post("/{name}/{version}/archive")
def archive(request: Request, name: str, version: str, body: ArchiveRequest) -> dict[str, Any]:
    """Hide a version from lists (still deployable by its version), or restore it."""
    model = client_of(request).models.archive(name, version, archived=body.archived)
    return plain(model) | {"ref": model.ref}


@router.delete("/{name}/{version}")
def delete(request: Request, name: str, version: str) -> dict[str, str]:
    """Delete a version and its files; refused (409) while a deployment serves it."""
    client_of(request).models.delete(name, version)
    return {"deleted": f"{name}:{version}"}
