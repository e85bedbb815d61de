"""The worker process: one model instance behind HTTP, started and probed by the gateway.

Serves HTTP at once (liveness) and loads the model in the background; readiness turns true
the moment loading ends, so the gateway routes to it without a fixed wait.

Run by hand (the gateway passes an inherited listening socket with ``--fd`` instead)::

    python -m chattune.serving.worker --model-path models/demo/1 --port 8001 --deployment demo

Routes: ``POST /score``, ``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /health/live``, ``GET /health/ready``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from chattune.serving.engine import Engine
from chattune.serving.handlers import Handlers, Limits
from chattune.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    DEPLOYMENT_HEADER,
    BodyLimitMiddleware,
    error_response,
    install_error_handlers,
)

if TYPE_CHECKING:
    from chattune.serving.batching import TransformersEngine

log = logging.getLogger("chattune.serving.worker")


def create_worker_app(
    engine: Engine,
    deployment: str,
    limits: Limits = Limits(),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The worker's FastAPI app over ``engine`` (a fake engine in tests).

    >>> app = create_worker_app(engine, "demo", Limits(request_timeout_ms=5000))
    """
    handlers = Handlers(engine, deployment, limits)
    app = FastAPI(title=f"chattune worker {deployment}", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)

    @app.middleware("http")
    async def name_deployment(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers[DEPLOYMENT_HEADER] = deployment
        return response

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready", response_model=None)
    async def ready() -> dict[str, str] | JSONResponse:
        if engine.is_ready():
            return {"status": "ready"}
        problem = getattr(engine, "load_error", None)
        return error_response(503, "not_ready", problem or f"{deployment} is loading its model")

    @app.post("/score")
    async def score(request: Request) -> dict[str, object]:
        return await handlers.score(await request.body())

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> dict[str, object] | StreamingResponse:
        answer = await handlers.chat_completion(await request.body())
        if isinstance(answer, AsyncIterator):
            return StreamingResponse(answer, media_type="text/event-stream")
        return answer

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return handlers.models()

    return app


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chattune.serving.worker")
    parser.add_argument("--model-path", required=True, help="HuggingFace model folder")
    parser.add_argument("--model-name", default=None, help="name in answers (NAME:VERSION)")
    parser.add_argument("--deployment", default="default")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fd", type=int, default=None, help="inherited listening socket")
    parser.add_argument("--request-timeout-ms", type=int, default=90_000)
    parser.add_argument("--max-concurrent-requests", type=int, default=1)
    parser.add_argument("--max-queue-wait-ms", type=int, default=500)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-window-ms", type=float, default=10.0)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when the parent (the gateway) dies"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {args.deployment}[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("uvicorn.access").addFilter(_NoProbes())
    from chattune.serving.batching import TransformersEngine

    engine = TransformersEngine(
        args.model_path,
        args.model_name or os.path.basename(args.model_path),
        max_batch_size=args.max_batch_size,
        batch_window_ms=args.batch_window_ms,
    )
    limits = Limits(args.request_timeout_ms, args.max_concurrent_requests, args.max_queue_wait_ms)
    app = create_worker_app(engine, args.deployment, limits, args.max_body_bytes)
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.create_server((args.host, args.port))
    log.info("listening on %s:%d, loading %s", *sock.getsockname()[:2], args.model_path)
    _exit_when_load_fails(engine, engine.start())
    if args.exit_with_parent:
        _exit_with_parent(os.getppid())

    import uvicorn

    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


class _NoProbes(logging.Filter):
    """Drop access-log lines of health probes (several a second while loading)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/health/" not in record.getMessage()


def _exit_when_load_fails(engine: TransformersEngine, thread: threading.Thread) -> None:
    """A model that cannot load is fatal: exit non-zero so the gateway reports it."""

    def watch() -> None:
        thread.join()
        if engine.load_error:
            log.error("exiting: the model could not be loaded: %s", engine.load_error)
            os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """Backstop against orphans: when the gateway dies, its workers follow."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("gateway %d is gone; shutting down", parent)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    main()
