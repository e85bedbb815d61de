"""The HTTP error shape shared by gateway and worker, and the body-size guard.

Every failure a client sees is ``{"error": {"code": "...", "message": "..."}}`` with a
status from 400/401/404/408/413/422/429/503 (500 only for a bug, with no stack trace);
the traceback goes to the process log and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("chattune.serving")

DEPLOYMENT_HEADER = "azureml-model-deployment"
WORKER_SECRET_HEADER = "x-chattune-worker-secret"
"""The gateway's secret on every request it forwards; a worker answers nothing else."""
WORKER_SECRET_ENV = "CHATTUNE_WORKER_SECRET"
"""How a gateway hands the secret to the workers it starts (never on their command line)."""
"""Names the deployment a request goes to, and the one that served an answer."""
RECONCILE_PATH = "/.chattune/reconcile"
"""The SDK posts here (with a key) so the gateway applies a change at once."""
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered to the client as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        """This error as its JSON response."""
        return error_response(self.status, self.code, self.message, headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape of every route, gateway and worker: ``{"error": {code, message}}``.

    >>> error_body("not_ready", "demo is loading its model")
    {'error': {'code': 'not_ready', 'message': 'demo is loading its model'}}
    """
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """:func:`error_body` as a JSON response with ``status``."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception a handler can raise to the one JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        message = str(exc.detail) if exc.status_code != 404 else f"no route {request.url.path}"
        return error_response(exc.status_code, code, message, exc.headers)  # 405 keeps Allow

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_bytes``, declared or not (chunked uploads too).

    The body is read here, counted as it arrives and refused the moment it passes the limit,
    so a route never sees an oversized body and no exception crosses other middleware (a
    limit raised inside the route surfaced as an ``ExceptionGroup`` and a 500). A body under
    the limit is handed on whole; later ``receive`` calls (disconnects) pass through.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return body.pop() if body else await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body is over the {self.max_bytes} byte limit; send a smaller request"

    async def _reject(self, send: Send) -> None:
        payload = json.dumps(error_body("payload_too_large", self._message())).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
