"""Forwarding a request to a worker and streaming its answer back (plus mirrored copies).

The answer streams through unchanged (SSE included) and carries ``azureml-model-deployment``
naming the deployment that served it. A mirrored copy's answer, or failure, is dropped,
unless the endpoint opts in to keeping mirror pairs (``pairs``: both answers, bounded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from chattune.serving.gateway.routing import RoutingTable, model_target, route
from chattune.serving.http import (
    DEPLOYMENT_HEADER,
    WORKER_SECRET_ENV,
    WORKER_SECRET_HEADER,
    ApiError,
    error_body,
)
from chattune.serving.pairs import Pair, PairRecorder
from chattune.serving.responses import sse

log = logging.getLogger("chattune.serving.gateway")

FORWARDED_HEADERS = ("content-type", "accept")
CHAT_PATH = "/v1/chat/completions"
MIRROR_TIMEOUT_S = 120.0


class Proxy:
    """The gateway's proxied routes: pick a deployment and instance, forward, stream back."""

    def __init__(
        self,
        endpoint: str,
        table: RoutingTable,
        client: httpx.AsyncClient,
        draw: Callable[[], float],
        on_broken: Callable[[str, str], None] | None = None,
        pairs: PairRecorder | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.pairs = pairs
        self.table = table
        self.client = client
        self.draw = draw
        self._shadows: set[asyncio.Task[None]] = set()
        self._secret = os.environ.get(WORKER_SECRET_ENV, "")
        self.on_broken = on_broken or (lambda target, why: log.warning("%s", why))
        """Told of each stream a worker broke off (the supervisor writes it to the
        deployment's log)."""
        self.broken: Counter[str] = Counter()

    async def forward(self, request: Request) -> Response:
        """Serve ``request`` from a worker of the chosen deployment."""
        body = await request.body()
        header = request.headers.get(DEPLOYMENT_HEADER)
        if not header and request.url.path == CHAT_PATH:
            header = model_target(self.endpoint, self.table, _model_field(body))
        target, shadow = route(self.endpoint, self.table, header, self.draw)
        url = self._instance(target)
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        headers[WORKER_SECRET_HEADER] = self._secret
        path, method = request.url.path, request.method
        pair = None
        if shadow is not None and (shadow_url := self.table.choose_instance(shadow)):
            pair = self.pairs.begin(target, shadow) if self.pairs else None
            task = asyncio.create_task(self._mirror(shadow_url + path, method, body, headers, pair))
            self._shadows.add(task)  # held until done, so it is not garbage-collected
            task.add_done_callback(self._shadows.discard)
        timeout = self.table.timeouts.get(target, 100.0)
        answer, url = await self._send(target, url, method, path, body, headers, timeout)

        async def done() -> None:
            self.table.inflight[url] -= 1
            await answer.aclose()

        events = answer.headers.get("content-type", "").startswith("text/event-stream")
        chunks = self._relay(answer, target) if events else answer.aiter_raw()
        return StreamingResponse(
            pair.capture(chunks, answer.status_code) if pair else chunks,
            status_code=answer.status_code,
            headers={
                "content-type": answer.headers.get("content-type", "application/json"),
                DEPLOYMENT_HEADER: target,
            },
            background=BackgroundTask(done),
        )

    async def _send(
        self,
        target: str,
        url: str,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[httpx.Response, str]:
        """Send to instance ``url`` of ``target``. A refused connection (the instance died and
        the supervisor has not yet taken it out of rotation) never reached a worker, so it is
        sent to the deployment's other instances: only requests inside a dying worker fail.
        A dead instance answers fastest, so without this it would draw most requests."""
        refused: set[str] = set()
        while True:
            upstream = self.client.build_request(
                method, url + path, content=body, headers=headers, timeout=timeout
            )
            self.table.inflight[url] += 1
            try:
                return await self.client.send(upstream, stream=True), url
            except httpx.HTTPError as exc:
                self.table.inflight[url] -= 1
                refused.add(url)
                other = self.table.choose_instance(target, exclude=refused)
                if not isinstance(exc, httpx.ConnectError) or other is None:
                    raise _unreachable(target, timeout, exc) from None
                url = other

    async def _relay(self, answer: httpx.Response, target: str) -> AsyncIterator[bytes]:
        """An SSE answer passed through; if the worker breaks off (it died, or stopped
        answering), the client still gets an error event and ``[DONE]``, never a stream
        that merely ends, and the deployment's log counts it."""
        try:
            async for chunk in answer.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            self.broken[target] += 1
            why = (
                f"the stream from deployment {target} broke off ({type(exc).__name__}); "
                "the answer is incomplete, retry the request"
            )
            self.on_broken(target, f"{why} [broken streams: {self.broken[target]}]")
            yield b"\n\n" + sse(error_body("stream_interrupted", why)) + sse("[DONE]")

    def _instance(self, target: str) -> str:
        url = self.table.choose_instance(target)
        if url is None:
            status = self.table.statuses.get(target, "unknown")
            raise ApiError(
                503,
                "deployment_not_ready",
                f"deployment {target} of endpoint {self.endpoint} has no ready instance "
                f"(status {status}); retry shortly",
            )
        return url

    async def _mirror(
        self, url: str, method: str, body: bytes, headers: dict[str, str], pair: Pair | None
    ) -> None:
        """Send a copy of a live request; the answer (or failure) is dropped, or kept in
        ``pair`` beside the live one."""
        try:
            answer = await self.client.request(
                method, url, content=body, headers=headers, timeout=MIRROR_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            log.info("mirrored request to %s failed: %s", url, type(exc).__name__)
            if pair is not None:
                pair.done("mirror", None, b"", type(exc).__name__)
            return
        if pair is not None:
            pair.done("mirror", answer.status_code, answer.content)


def _model_field(body: bytes) -> str | None:
    """The ``model`` of a chat request body; ``None`` when there is none or the body is not
    JSON (the worker answers that with its own 400)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def _unreachable(target: str, timeout: float, exc: httpx.HTTPError) -> ApiError:
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(
            408, "request_timeout", f"deployment {target} did not answer within {timeout:g}s"
        )
    return ApiError(
        503,
        "deployment_unreachable",
        f"deployment {target} is unreachable ({type(exc).__name__}); "
        "the gateway restarts failed workers, retry shortly",
    )
