"""A worker's HTTP app: thin routes over :class:`~.handlers.Handlers` and one engine.

Routes: ``POST /score``, ``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /health/live`` (the process answers), ``GET /health/ready`` (the model is loaded).
Every answer names the deployment in ``azureml-model-deployment``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Scope

from chattune.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    DEPLOYMENT_HEADER,
    WORKER_SECRET_HEADER,
    ApiError,
    BodyLimitMiddleware,
    Guard,
    error_response,
    install_error_handlers,
)
from chattune.serving.responses import ChatCompletion, ErrorBody, ModelList, Reply, ScoreResponse
from chattune.serving.routes import ChatBody, ScoreBody, openapi_kwargs
from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.engines import Engine
from chattune.serving.worker.handlers import Handlers


def create_worker_app(
    engine: Engine,
    deployment: str,
    settings: DeploymentSettings | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    secret: str | None = None,
) -> FastAPI:
    """The worker's FastAPI app over ``engine`` (a fake engine in tests).

    With ``secret`` (what its gateway holds), every route but ``/health/*`` answers only
    requests that carry it: the worker is reachable through its gateway alone.

    >>> app = create_worker_app(engine, "demo", DeploymentSettings(request_timeout_ms=5000))
    """
    handlers = Handlers(engine, deployment, settings)
    app = FastAPI(title=f"chattune worker {deployment}", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # The secret is checked from the headers before any body byte is read.
    guard = _secret_guard(secret) if secret else None
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, guard=guard)

    @app.middleware("http")
    async def name_deployment(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers[DEPLOYMENT_HEADER] = deployment
        return response

    @app.get("/health/live")
    async def live() -> Reply:
        return Reply(status="alive")

    @app.get("/health/ready", response_model=Reply, responses={503: {"model": ErrorBody}})
    async def ready() -> Reply | JSONResponse:
        if engine.is_ready():
            return Reply(status="ready")
        why = engine.load_error or f"{deployment} is loading its model"
        return error_response(503, "not_ready", why)

    async def score(request: ScoreBody) -> ScoreResponse:
        return await handlers.score(request)

    async def chat_completions(request: ChatBody) -> ChatCompletion | StreamingResponse:
        answer = await handlers.chat_completion(request)
        if isinstance(answer, AsyncIterator):
            return StreamingResponse(answer, media_type="text/event-stream")
        return answer

    async def models() -> ModelList:
        return handlers.models()

    for path, endpoint in (
        ("/score", score),
        ("/v1/chat/completions", chat_completions),
        ("/v1/models", models),
    ):
        app.add_api_route(path, endpoint, response_model=None, **openapi_kwargs(path))
    return app


def _secret_guard(secret: str) -> Guard:
    """401 for every route but ``/health/*`` without the gateway's secret header."""
    wanted = secret.encode()

    def guard(scope: Scope) -> ApiError | None:
        if scope["path"].startswith("/health/"):
            return None
        given = dict(scope["headers"]).get(WORKER_SECRET_HEADER.encode(), b"")
        if hmac.compare_digest(given, wanted):
            return None
        return ApiError(401, "unauthorized", "call the endpoint, not its worker")

    return guard
