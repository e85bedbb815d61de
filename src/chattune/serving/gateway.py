"""The gateway: one process per endpoint that authenticates, routes, and owns the workers.

Started by :meth:`EndpointsAPI.create` in its own session (so deleting the endpoint can kill
the whole process group as a backstop)::

    python -m chattune.serving.gateway --workspace .chattune --endpoint my-ep

Every route but :data:`PUBLIC_PATHS` needs ``Authorization: Bearer <key>``. A request goes to
the deployment named by the ``azureml-model-deployment`` header, else to one drawn by the
traffic weights; a mirror share is copied to a shadow deployment whose answer is dropped.
The answer carries ``azureml-model-deployment`` naming the deployment that served it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from chattune.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    DEPLOYMENT_HEADER,
    ApiError,
    BodyLimitMiddleware,
    error_response,
    install_error_handlers,
)
from chattune.serving.keys import KeyStore
from chattune.serving.routing import RoutingTable
from chattune.serving.traffic import pick, pick_mirror

log = logging.getLogger("chattune.serving.gateway")

PUBLIC_PATHS = frozenset({"/health/live", "/health/ready"})
RECONCILE_PATH = "/.chattune/reconcile"
PROXIED = {"/score": "POST", "/v1/chat/completions": "POST", "/v1/models": "GET"}
_FORWARDED_HEADERS = ("content-type", "accept")


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
    shadows: set[asyncio.Task[None]] = set()

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path not in PUBLIC_PATHS and not keys.check(
            request.headers.get("authorization")
        ):
            return error_response(
                401,
                "unauthorized",
                f"missing or wrong key for endpoint {endpoint}; send 'Authorization: Bearer "
                f"<key>' (see `chattune endpoints get-keys {endpoint}`)",
                headers={"www-authenticate": "Bearer"},
            )
        return await call_next(request)

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

    async def proxy(request: Request) -> Response:
        target, shadow = _route(endpoint, table, request.headers.get(DEPLOYMENT_HEADER), draw)
        url = table.choose_instance(target)
        if url is None:
            status = table.statuses.get(target, "unknown")
            raise ApiError(
                503,
                "deployment_not_ready",
                f"deployment {target} of endpoint {endpoint} has no ready instance "
                f"(status {status}); retry shortly",
            )
        body = await request.body()
        headers = {h: request.headers[h] for h in _FORWARDED_HEADERS if h in request.headers}
        path = request.url.path
        if shadow is not None and (shadow_url := table.choose_instance(shadow)):
            task = asyncio.create_task(
                _mirror(client, shadow_url + path, request.method, body, headers)
            )
            shadows.add(task)
            task.add_done_callback(shadows.discard)
        timeout = table.timeouts.get(target, 100.0)
        upstream = client.build_request(
            request.method, url + path, content=body, headers=headers, timeout=timeout
        )
        table.inflight[url] += 1
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.TimeoutException:
            table.inflight[url] -= 1
            raise ApiError(
                408, "request_timeout", f"deployment {target} did not answer within {timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            table.inflight[url] -= 1
            raise ApiError(
                503,
                "deployment_unreachable",
                f"deployment {target} is unreachable ({type(exc).__name__}); "
                "the gateway restarts failed workers, retry shortly",
            ) from None

        async def done() -> None:
            table.inflight[url] -= 1
            await answer.aclose()

        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={
                "content-type": answer.headers.get("content-type", "application/json"),
                DEPLOYMENT_HEADER: target,
            },
            background=BackgroundTask(done),
        )

    for path, method in PROXIED.items():
        app.add_api_route(path, proxy, methods=[method], include_in_schema=False)
    return app


def _route(
    endpoint: str, table: RoutingTable, header: str | None, draw: Callable[[], float]
) -> tuple[str, str | None]:
    """(deployment to serve, deployment to mirror to or None) for one request."""
    if header:
        if header not in table.instances:
            known = ", ".join(sorted(table.instances)) or "none"
            raise ApiError(
                404,
                "deployment_not_found",
                f"deployment {header!r} not found on endpoint {endpoint} "
                f"(deployments: {known}); fix the {DEPLOYMENT_HEADER} header",
            )
        return header, None  # a targeted request is not mirrored
    target = pick(table.traffic, draw())
    if target is None:
        raise ApiError(
            404,
            "no_traffic",
            f"endpoint {endpoint} routes no traffic to any deployment; run "
            f"`chattune endpoints update {endpoint} --traffic NAME=100` or send "
            f"the {DEPLOYMENT_HEADER} header",
        )
    return target, pick_mirror(table.mirror, draw())


async def _mirror(
    client: httpx.AsyncClient, url: str, method: str, body: bytes, headers: dict[str, str]
) -> None:
    """Send a copy of a live request; the answer (or failure) is dropped."""
    try:
        await client.request(method, url, content=body, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        log.info("mirrored request to %s failed: %s", url, type(exc).__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chattune.serving.gateway")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe is noise
    from chattune.serving.runner import run_gateway
    from chattune.workspace import Workspace

    run_gateway(Workspace(Path(args.workspace)), args.endpoint)


if __name__ == "__main__":
    main()
