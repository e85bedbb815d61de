"""The gateway's HTTP app: key auth, health, the reconcile nudge, and the proxied routes.

Every route but :data:`PUBLIC_PATHS` needs ``Authorization: Bearer <key>``. A request goes to
the deployment named by the ``azureml-model-deployment`` header, else to one drawn by the
traffic weights; a mirror share is copied to a shadow deployment whose answer is dropped
(:mod:`~chattune.serving.gateway.proxy`).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from chattune.serving.gateway.proxy import Proxy
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    RECONCILE_PATH,
    BodyLimitMiddleware,
    error_response,
    install_error_handlers,
)
from chattune.serving.keys import KeyStore

PUBLIC_PATHS = frozenset({"/health/live", "/health/ready"})
PROXIED = {"/score": "POST", "/v1/chat/completions": "POST", "/v1/models": "GET"}
Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


def create_gateway_app(
    endpoint: str,
    keys: KeyStore,
    table: RoutingTable,
    client: httpx.AsyncClient,
    *,
    reconcile: Callable[[], Awaitable[None]] | None = None,
    draw: Callable[[], float] = random.random,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    lifespan: Callable[[FastAPI], AsyncIterator[None]] | None = None,
) -> FastAPI:
    """The gateway's FastAPI app; ``table`` is updated in place by the supervisor.

    >>> app = create_gateway_app("my-ep", KeyStore(path), table, httpx.AsyncClient())
    """
    app = FastAPI(
        title=f"chattune endpoint {endpoint}",
        docs_url=None,
        redoc_url=None,
        lifespan=asynccontextmanager(lifespan) if lifespan else None,
    )
    install_error_handlers(app)
    app.middleware("http")(_authenticate(endpoint, keys))
    # Outermost, so an oversized body is refused before anything reads it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready", response_model=None)
    async def ready() -> dict[str, object] | JSONResponse:
        serving = [name for name, urls in table.instances.items() if urls]
        if serving:
            return {"status": "ready", "deployments": serving}
        return error_response(503, "not_ready", f"endpoint {endpoint} has no ready deployment")

    @app.post(RECONCILE_PATH)
    async def reconcile_now() -> dict[str, str]:
        if reconcile is not None:
            await reconcile()
        return {"status": "reconciled"}

    proxy = Proxy(endpoint, table, client, draw)
    for path, method in PROXIED.items():
        app.add_api_route(path, proxy.forward, methods=[method], include_in_schema=False)
    return app


def _authenticate(endpoint: str, keys: KeyStore) -> Middleware:
    """401 for a private route without a valid key (keys compared in constant time)."""

    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in PUBLIC_PATHS or keys.check(request.headers.get("authorization")):
            return await call_next(request)
        return error_response(
            401,
            "unauthorized",
            f"missing or wrong key for endpoint {endpoint}; send 'Authorization: Bearer "
            f"<key>' (see `chattune endpoints get-keys {endpoint}`)",
            headers={"www-authenticate": "Bearer"},
        )

    return authenticate
