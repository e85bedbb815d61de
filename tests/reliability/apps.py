"""In-process gateway and worker apps for the fast reliability tests (no model, no process):
a worker app over an engine that streams a canned reply, and a gateway app in front of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from chattune.data.schema import Message
from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.routing import RoutingTable
from chattune.serving.keys import KeyStore, write_keys
from chattune.serving.worker.app import create_worker_app
from chattune.serving.worker.engines import Delta, GenerationParams

KEY, SECOND = "k" * 43, "s" * 43
SECRET = "w" * 43
SCORE = {"input_data": {"input_string": [{"role": "user", "content": "Hi"}]}}


class CannedEngine:
    """An engine that answers "Hello there friend" word by word (what the app layer sees)."""

    model_name = "canned:1"
    load_error: str | None = None

    def start(self) -> None:
        pass

    def is_ready(self) -> bool:
        return True

    async def stream(
        self, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        words = ["Hello", " there", " friend"]
        for i, word in enumerate(words):
            await asyncio.sleep(0)
            last = i == len(words) - 1
            yield Delta(word, "stop" if last else None, prompt_tokens=3, completion_tokens=i + 1)


def worker_app(secret: str | None = SECRET, max_body_bytes: int | None = None) -> FastAPI:
    extra = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    return create_worker_app(CannedEngine(), "demo", secret=secret, **extra)  # type: ignore[arg-type]


class WithSecret(httpx.AsyncBaseTransport):
    """The gateway's side of the worker secret: adds it, as the gateway process does."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["x-chattune-worker-secret"] = SECRET
        return await self.inner.handle_async_request(request)


def gateway_app(tmp_path: Path, max_body_bytes: int | None = None) -> FastAPI:
    """A gateway for endpoint ``my-ep`` whose deployment ``demo`` is a worker app (100%)."""
    write_keys(tmp_path / "keys.json", {"primary": KEY, "secondary": SECOND})
    table = RoutingTable(
        traffic={"demo": 100},
        instances={"demo": ["http://demo"]},
        statuses={"demo": "ready"},
    )
    extra = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    return create_gateway_app(
        "my-ep",
        KeyStore(tmp_path / "keys.json"),
        table,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=worker_app(None, max_body_bytes))),
        **extra,  # type: ignore[arg-type]
    )


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, concrete path) the app serves; path parameters filled with ``x``."""
    for route in app.routes:
        if isinstance(route, APIRoute | Route):
            path = route.path
            for name in route.param_convertors:
                path = path.replace("{" + name + "}", "x")
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    yield method, path
