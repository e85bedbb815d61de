"""``GET /api/session``: the page's CSRF token (readable by the studio's own pages only: no
CORS, so another origin's script cannot read the answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/api")


@router.get("/session")
def session(request: Request) -> JSONResponse:
    csrf = request.app.state.gate.csrf_of(request)
    return JSONResponse({"csrf": csrf}, headers={"cache-control": "no-store"})
