"""Endpoints JSON routes: endpoints with their deployments and health, create endpoint and
deployment, traffic and mirror (the SDK checks they sum to 100), logs, keys on demand."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from chattune.studio.deps import client_of, plain

router = APIRouter(prefix="/api/endpoints")


class EndpointRequest(BaseModel):
    name: str


class DeploymentRequest(BaseModel):
    name: str
    model: str
    instance_count: int | None = None
    request_timeout_ms: int | None = None
    max_concurrent_requests_per_instance: int | None = None


class TrafficRequest(BaseModel):
    traffic: dict[str, int] | None = None
    mirror_traffic: dict[str, int] | None = None


class KeyRequest(BaseModel):
    key_type: str = "primary"


def mask(key: str) -> str:
    return "•" * 8 + key[-4:]


@router.get("")
def list_endpoints(request: Request) -> list[dict[str, Any]]:
    return [plain(e) for e in client_of(request).endpoints.list()]


@router.post("")
def create_endpoint(request: Request, body: EndpointRequest) -> dict[str, Any]:
    return plain(client_of(request).endpoints.create(body.name))


@router.get("/{name}")
def get_endpoint(request: Request, name: str) -> dict[str, Any]:
    """The endpoint, each deployment (status, instances, settings) and masked keys."""
    endpoints = client_of(request).endpoints
    info = endpoints.get(name)
    keys = endpoints.get_keys(name)
    return {
        **plain(info),
        "deployment_info": [plain(d) for d in endpoints.list_deployments(name)],
        "keys": {k: mask(v) for k, v in keys.items()},
    }


@router.post("/{name}/deployments")
def create_deployment(request: Request, name: str, body: DeploymentRequest) -> dict[str, Any]:
    extra = body.model_dump(exclude={"name", "model"}, exclude_none=True)
    info = client_of(request).endpoints.create_deployment(name, body.name, body.model, **extra)
    return plain(info)


@router.put("/{name}/traffic")
def update_traffic(request: Request, name: str, body: TrafficRequest) -> dict[str, Any]:
    info = client_of(request).endpoints.update(name, body.traffic, body.mirror_traffic)
    return plain(info)


@router.get("/{name}/logs")
def logs(request: Request, name: str, deployment: str | None = None) -> dict[str, str]:
    text = client_of(request).endpoints.get_logs(name, deployment or None, lines=80)
    return {"text": text}


@router.get("/{name}/keys")
def keys(request: Request, name: str) -> dict[str, str]:
    """The keys in full: fetched on demand by the copy button, never put in a page."""
    return client_of(request).endpoints.get_keys(name)


@router.post("/{name}/keys")
def regenerate(request: Request, name: str, body: KeyRequest) -> dict[str, str]:
    found = client_of(request).endpoints.regenerate_keys(name, body.key_type)
    return {k: mask(v) for k, v in found.items()}


@router.post("/{name}/start")
def start(request: Request, name: str) -> dict[str, Any]:
    """Bring back a dead endpoint's gateway (``chattune endpoints start``)."""
    return plain(client_of(request).endpoints.start(name))


@router.delete("/{name}")
def delete(request: Request, name: str) -> dict[str, str]:
    """Stop the gateway and its workers, remove the endpoint (``chattune endpoints delete``)."""
    client_of(request).endpoints.delete(name)
    return {"deleted": name}


@router.delete("/{name}/deployments/{deployment}")
def delete_deployment(request: Request, name: str, deployment: str) -> dict[str, str]:
    """Refused (409) while it still gets traffic or mirror traffic, as in the CLI."""
    client_of(request).endpoints.delete_deployment(name, deployment)
    return {"deleted": deployment, "endpoint": name}
