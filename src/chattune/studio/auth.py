"""The studio's token: a one-time URL sets a cookie; every other request must carry it.

``/?token=T`` (any page) checks T, sets an HttpOnly SameSite=Strict cookie and redirects
to the same page without the token, so the token leaves the address bar and the history.
Scripts and tools may send ``Authorization: Bearer T`` instead. Everything else (pages,
API routes, static files) answers 401 JSON, except ``/login``, which says how to get in.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

COOKIE = "chattune_studio"
PUBLIC = ("/login",)


def same(given: str | None, token: str) -> bool:
    """Constant-time comparison (no timing hint about how much of the token matched)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def unauthorized() -> JSONResponse:
    return JSONResponse(
        {
            "error": "unauthorized: the studio needs its token",
            "hint": "open the URL `chattune studio` printed (it has ?token=...), "
            "or send Authorization: Bearer TOKEN",
        },
        status_code=401,
    )


def token_middleware(
    token: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """An HTTP middleware that lets only requests with the token through."""

    async def check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in PUBLIC:
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and request.method == "GET":
            if not same(given, token):
                return unauthorized()
            query = urlencode([kv for kv in request.query_params.multi_items() if kv[0] != "token"])
            target = request.url.path + (f"?{query}" if query else "")
            answer = RedirectResponse(target, status_code=303)
            answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return answer
        if same(request.cookies.get(COOKIE), token) or same(bearer(request), token):
            return await call_next(request)
        return unauthorized()

    return check
