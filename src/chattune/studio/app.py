"""``create_studio_app(client, token)``: the FastAPI app behind ``chattune studio``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from chattune.errors import ChattuneError
from chattune.studio import (
    api_data,
    api_endpoints,
    api_jobs,
    api_models,
    pages,
    pages_more,
    playground,
)
from chattune.studio.auth import token_middleware
from chattune.studio.deps import field_of, status_of

if TYPE_CHECKING:
    from chattune.client import Client

STATIC = Path(__file__).parent / "static"


def create_studio_app(client: Client, token: str, root: str | Path = ".") -> FastAPI:
    """The studio over ``client``; every route needs ``token``; data files under ``root``."""
    app = FastAPI(title="chattune studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.client = client
    app.state.root = Path(root)
    app.middleware("http")(token_middleware(token))

    @app.exception_handler(ChattuneError)
    async def sdk_error(request: Request, exc: ChattuneError) -> JSONResponse:
        body = {"error": exc.message, "hint": exc.hint, "field": field_of(exc.message)}
        return JSONResponse(body, status_code=status_of(exc))

    for module in (api_jobs, api_data, api_models, api_endpoints, playground, pages, pages_more):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
