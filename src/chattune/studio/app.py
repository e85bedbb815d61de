"""``create_studio_app(client, token)``: the FastAPI app behind ``chattune studio``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from chattune.errors import ChattuneError
from chattune.studio import (
    api_data,
    api_endpoints,
    api_jobs,
    api_models,
    api_session,
    compare,
    pages,
    pages_more,
    playground,
)
from chattune.studio.auth import LOOPBACK_HOSTS, Gate, gate_middleware
from chattune.studio.deps import field_of, status_of

if TYPE_CHECKING:
    from chattune.client import Client

STATIC = Path(__file__).parent / "static"


def create_studio_app(
    client: Client,
    token: str,
    root: str | Path = ".",
    *,
    data_dirs: Iterable[str | Path] = (),
    reuse_token: bool = False,
    hosts: Iterable[str] | None = LOOPBACK_HOSTS,
) -> FastAPI:
    """The studio over ``client``; ``token`` logs in once (``reuse_token``: more than once);
    data files are read under ``root`` and ``data_dirs`` only; ``hosts``: the Host names it
    answers to (None: any)."""
    app = FastAPI(title="chattune studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.client = client
    app.state.root = Path(root)
    app.state.data_roots = [Path(d).expanduser().resolve() for d in (root, *data_dirs)]
    gate = Gate(token, reuse_token, None if hosts is None else frozenset(hosts))
    app.state.gate = gate
    app.middleware("http")(gate_middleware(gate))
    add_error_handlers(app)
    routers = (api_session, compare, api_jobs, api_data, api_models, api_endpoints, playground)
    for module in (*routers, pages, pages_more):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error answers JSON: the SDK's (message, hint, field), a bad body, a bug."""

    @app.exception_handler(ChattuneError)
    async def sdk_error(request: Request, exc: ChattuneError) -> JSONResponse:
        body = {"error": exc.message, "hint": exc.hint, "field": field_of(exc.message)}
        return JSONResponse(body, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"request {where or 'body'}: {first.get('msg', 'invalid')}"
        return JSONResponse({"error": message, "hint": "", "field": None}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        body = {
            "error": f"internal error: {type(exc).__name__} in {request.url.path}",
            "hint": "see the terminal running `chattune studio` for the traceback",
            "field": None,
        }
        return JSONResponse(body, status_code=500)
