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
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.types import Scope

from chattune.serving.gateway.proxy import Proxy
from chattune.serving.gateway.routing import RoutingTable, model_target
from chattune.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    RECONCILE_PATH,
    ApiError,
    BodyLimitMiddleware,
    Guard,
    error_response,
    install_error_handlers,
)
from chattune.serving.keys import KeyStore
from chattune.serving.pairs import PairRecorder
from chattune.serving.responses import ErrorBody, ModelCard, ModelList, Reply
from chattune.serving.routes import openapi_kwargs

PUBLIC_PATHS = frozenset({"/health/live", "/health/ready"})
BEARER = HTTPBearer(auto_error=False, scheme_name="endpointKey", description="An endpoint key")
"""Declares the key in the OpenAPI document (the key guard middleware checks it)."""
PROXIED = ("/score", "/v1/chat/completions")
API_DESCRIPTION = (
    "Every route but /health/* needs `Authorization: Bearer <key>` "
    "(`chattune endpoints get-keys NAME`). Send `azureml-model-deployment: NAME` to pick a "
    "deployment; every answer names the one that served it in that header. Errors are "
    '`{"error": {"code", "message"}}`.'
)


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
    on_broken: Callable[[str, str], None] | None = None,
    pairs: PairRecorder | None = None,
) -> FastAPI:
    """The gateway's FastAPI app; ``table`` is updated in place by the supervisor.

    >>> app = create_gateway_app("my-ep", KeyStore(path), table, httpx.AsyncClient())
    """
    app = FastAPI(
        title=f"chattune endpoint {endpoint}",
        description=API_DESCRIPTION,
        redoc_url=None,  # /docs and /openapi.json stay: private like every non-health route
        lifespan=asynccontextmanager(lifespan) if lifespan else None,
    )
    install_error_handlers(app)
    # Outermost: the key is checked from the headers before any body byte is read, and an
    # oversized or slow body is refused before anything else reads it.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=max_body_bytes, guard=_key_guard(endpoint, keys)
    )

    @app.get("/health/live")
    async def live() -> Reply:
        return Reply(status="alive")

    @app.get("/health/ready", response_model=Reply, responses={503: {"model": ErrorBody}})
    async def ready() -> Reply | JSONResponse:
        # Public (no key): it says ready or not, never which deployments exist.
        if any(table.instances.values()):
            return Reply(status="ready")
        return error_response(503, "not_ready", f"endpoint {endpoint} has no ready deployment")

    @app.post(RECONCILE_PATH, dependencies=[Depends(BEARER)])
    async def reconcile_now() -> Reply:
        if reconcile is not None:
            await reconcile()
        return Reply(status="reconciled")

    _add_model_routes(app, endpoint, Proxy(endpoint, table, client, draw, on_broken, pairs))
    return app


def _add_model_routes(app: FastAPI, endpoint: str, proxy: Proxy) -> None:
    """The proxied routes, and ``GET /v1/models/{id}`` answered from the routing table."""
    table = proxy.table

    secured = [Depends(BEARER)]  # documents the key; the guard middleware checks it

    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=m) for m in table.served_models()])

    app.add_api_route(
        "/v1/models",
        models,
        response_model=ModelList,
        dependencies=secured,
        **openapi_kwargs("/v1/models"),
    )

    @app.get(
        "/v1/models/{model_id}",
        summary="One model the endpoint serves",
        dependencies=secured,
        responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def model(model_id: str) -> ModelCard:
        if not table.knows_model(endpoint, model_id):
            model_target(endpoint, table, model_id)  # raises the 404 that lists the known
        return ModelCard(id=model_id)

    for path in PROXIED:
        app.add_api_route(
            path, proxy.forward, response_model=None, dependencies=secured, **openapi_kwargs(path)
        )


def _key_guard(endpoint: str, keys: KeyStore) -> Guard:
    """401 for a private route without a valid key (keys compared in constant time)."""

    def guard(scope: Scope) -> ApiError | None:
        if scope["path"] in PUBLIC_PATHS:
            return None
        authorization = dict(scope["headers"]).get(b"authorization", b"")
        if keys.check(authorization.decode("latin-1") or None):
            return None
        return ApiError(
            401,
            "unauthorized",
            f"missing or wrong key for endpoint {endpoint}; send 'Authorization: Bearer "
            f"<key>' (see `chattune endpoints get-keys {endpoint}`)",
            headers={"www-authenticate": "Bearer"},
        )

    return guard
