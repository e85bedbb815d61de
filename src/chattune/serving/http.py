"""The HTTP error shape shared by gateway and worker, and the body-size guard.

Every failure a client sees is ``{"error": {"code": "...", "message": "..."}}`` with a
status from 400/401/404/408/413/422/429/503 (500 only for a bug, with no stack trace);
the traceback goes to the process log and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chattune.serving.responses import ErrorBody, ErrorDetail

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

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        """Extra response headers (``www-authenticate`` on a 401)."""

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        """This error as its JSON response."""
        return error_response(self.status, self.code, self.message, self.headers | (headers or {}))


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape of every route, gateway and worker: ``{"error": {code, message}}``.

    >>> error_body("not_ready", "demo is loading its model")
    {'error': {'code': 'not_ready', 'message': 'demo is loading its model'}}
    """
    return ErrorBody(error=ErrorDetail(code=code, message=message)).model_dump()


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
        headers = dict(exc.headers or {})  # a 405 keeps its Allow
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")


Guard = Callable[[Scope], ApiError | None]
"""A check on a request's headers alone (the key, the worker secret): None lets it in, else
the error to answer. It runs before a byte of the body is read."""
DEFAULT_BODY_TIMEOUT_S = 30.0
LINGER_S = 1.0
DEFAULT_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024


class BodyLimitMiddleware:
    """Check the caller from its headers, then read the body within bounds, then route.

    - ``guard`` (the key check) runs on the headers before any body byte is read: a caller
      without a key gets its 401 at once and the connection is closed, so unauthenticated
      clients cannot make the server hold their bodies (100 keyless 4 MiB uploads used to
      hold ~500 MB of a gateway).
    - 413 for bodies over ``max_bytes``, declared or not (chunked uploads too), refused the
      moment they pass it, so a route never sees one and no exception crosses other
      middleware (a limit raised inside the route surfaced as an ``ExceptionGroup``).
    - 408 when the whole body has not arrived within ``body_timeout_s`` (a slow sender holds
      its connection that long at most); 503 when the bodies being received by all
      connections together would pass ``max_inflight_bytes``.

    A body within bounds is handed on whole; later ``receive`` calls (disconnects) pass
    through.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        guard: Guard | None = None,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.guard = guard
        self.body_timeout_s = body_timeout_s
        self.max_inflight_bytes = max_inflight_bytes
        self.inflight = 0
        """Body bytes held right now by requests still being received."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.guard(scope) if self.guard is not None else None
        if refused is not None:  # its body is never kept
            await self._reject(send, receive, refused)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send, receive, ApiError(413, "payload_too_large", self._message()))
            return
        held: list[int] = [0]
        try:
            body = await asyncio.wait_for(self._read(receive, send, held), self.body_timeout_s)
        except TimeoutError:
            why = f"request body did not arrive within {self.body_timeout_s:g} s; send it at once"
            await self._reject(send, receive, ApiError(408, "request_timeout", why))
            return
        finally:
            self.inflight -= held[0]
        if body is None:
            return
        replayed: list[Message] = [{"type": "http.request", "body": body}]

        async def replay() -> Message:
            return replayed.pop() if replayed else await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, send: Send, held: list[int]) -> bytes | None:
        """The whole body, or None once a refusal was sent (or the client left)."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return None
            chunk = message.get("body", b"")
            if held[0] + len(chunk) > self.max_bytes:
                refused = ApiError(413, "payload_too_large", self._message())
                await self._reject(send, receive, refused)
                return None
            if self.inflight + len(chunk) > self.max_inflight_bytes:
                why = "the server is receiving too many request bodies at once; retry shortly"
                await self._reject(send, receive, ApiError(503, "unavailable", why))
                return None
            held[0] += len(chunk)
            self.inflight += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _message(self) -> str:
        return f"request body is over the {self.max_bytes} byte limit; send a smaller request"

    async def _reject(self, send: Send, receive: Receive, error: ApiError) -> None:
        """Answer ``error`` and close, lingering up to :data:`LINGER_S` while discarding what
        the client still sends: closing on unread data makes the kernel send a reset, which
        can destroy the answer before the client reads it (nginx's lingering close)."""
        payload = json.dumps(error_body(error.code, error.message)).encode()
        headers = {"content-type": "application/json", "content-length": str(len(payload))}
        headers |= {k.lower(): v for k, v in error.headers.items()} | {"connection": "close"}
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": True})
        deadline = asyncio.get_running_loop().time() + LINGER_S
        with contextlib.suppress(TimeoutError):
            while True:  # each chunk is dropped at once: nothing is held
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:  # a client that keeps sending is not waited for longer
                    break
                message = await asyncio.wait_for(receive(), left)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        await send({"type": "http.response.body", "body": b""})
