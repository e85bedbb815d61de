"""The studio's gate: login token → session, Host and Origin checks, a CSRF token.

``/?token=T`` (any page) checks T once, opens a session (a fresh random id, never the
token) in an HttpOnly SameSite=Strict cookie and redirects to the same page without the
token. The token URL then stops working (``--reuse-token`` keeps it valid); a browser that
already holds a session is simply let through. Scripts may send ``Authorization: Bearer T``
on every request instead (not ambient, so no CSRF token is needed with it).

Every state-changing request (POST, PUT, PATCH, DELETE) must come from the studio's own
origin: the Host must be one the studio answers to and the ``Origin`` (or ``Referer``) must
be ``http://<that host>``; with a session cookie it must also carry the session's CSRF token
in ``X-Chattune-CSRF`` (pages read it from ``GET /api/session``, which another origin cannot
read). A page on another port of the same machine gets 403 before any handler runs.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

COOKIE = "chattune_studio"
CSRF_HEADER = "x-chattune-csrf"
PUBLIC = ("/login",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

Handler = Callable[[Request], Awaitable[Response]]


def same(given: str | None, token: str) -> bool:
    """Constant-time comparison (no timing hint about how much of the token matched)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def refuse(status: int, error: str, hint: str) -> JSONResponse:
    return JSONResponse({"error": error, "hint": hint}, status_code=status)


def unauthorized(used: bool = False) -> JSONResponse:
    if used:
        return refuse(
            401,
            "unauthorized: this login URL was used already",
            "restart `chattune studio` for a new URL (or start it with --reuse-token)",
        )
    return refuse(
        401,
        "unauthorized: the studio needs its token",
        "open the URL `chattune studio` printed (it has ?token=...), "
        "or send Authorization: Bearer TOKEN",
    )


def host_name(netloc: str) -> str:
    """``127.0.0.1:8765`` → ``127.0.0.1``; ``[::1]:80`` → ``::1``."""
    return urlsplit(f"//{netloc}").hostname or ""


@dataclass
class Gate:
    """The studio's login and session state (one per app, in memory)."""

    token: str
    reuse_token: bool = False
    # Host names the studio answers to; None: any (bound on every interface, by choice).
    hosts: frozenset[str] | None = frozenset(LOOPBACK_HOSTS)
    used: bool = False
    sessions: dict[str, str] = field(default_factory=dict)  # session id → CSRF token

    def open_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self.sessions[session] = secrets.token_urlsafe(32)
        self.used = True
        return session

    def session_of(self, request: Request) -> str | None:
        given = request.cookies.get(COOKIE)
        return given if given is not None and given in self.sessions else None

    def csrf_of(self, request: Request) -> str | None:
        session = self.session_of(request)
        return self.sessions[session] if session else None


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """What Host headers the studio bound on ``bound`` answers to (None: any)."""
    if bound in ("0.0.0.0", "::", ""):
        return None
    return frozenset({*LOOPBACK_HOSTS, bound.strip("[]"), *extra})


def foreign_origin(request: Request) -> str | None:
    """Why a state-changing request is not from the studio's own origin (None: it is)."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is not None:
        return None if origin == own else f"origin {origin} is not the studio's ({own})"
    referer = request.headers.get("referer")
    if referer is not None:
        parts = urlsplit(referer)
        came = f"{parts.scheme}://{parts.netloc}"
        return None if came == own else f"referer {came} is not the studio's ({own})"
    return None


def forbidden(why: str) -> JSONResponse:
    return refuse(
        403,
        f"forbidden: {why}",
        "use the studio's own pages (a page of another site or port cannot act on it)",
    )


def login(gate: Gate, request: Request, given: str) -> Response:
    """``?token=`` on a page: open a session (once) and redirect without the token."""
    query = urlencode([kv for kv in request.query_params.multi_items() if kv[0] != "token"])
    answer = RedirectResponse(request.url.path + (f"?{query}" if query else ""), 303)
    if gate.session_of(request) is not None:
        return answer  # already in: an old bookmark or a reload of the URL
    if not same(given, gate.token):
        return unauthorized()
    if gate.used and not gate.reuse_token:
        return unauthorized(used=True)
    answer.set_cookie(COOKIE, gate.open_session(), httponly=True, samesite="strict", path="/")
    return answer


def check_write(gate: Gate, request: Request, by_bearer: bool) -> JSONResponse | None:
    """403 for a state-changing request from elsewhere or without the CSRF token."""
    why = foreign_origin(request)
    if why:
        return forbidden(why)
    if by_bearer:
        return None
    csrf = gate.csrf_of(request)
    if csrf is None or not same(request.headers.get(CSRF_HEADER), csrf):
        return forbidden(f"missing or wrong CSRF token (header {CSRF_HEADER})")
    return None


def gate_middleware(gate: Gate) -> Callable[[Request, Handler], Awaitable[Response]]:
    """An HTTP middleware: the Host check, the login, the session and the CSRF checks."""

    async def check(request: Request, call_next: Handler) -> Response:
        host = host_name(request.headers.get("host", ""))
        if gate.hosts is not None and host not in gate.hosts:
            return forbidden(f"host {host or '(none)'} is not one the studio answers to")
        if request.url.path in PUBLIC:
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and request.method == "GET":
            return login(gate, request, given)
        by_bearer = same(bearer(request), gate.token)
        if not by_bearer and gate.session_of(request) is None:
            return unauthorized()
        if request.method not in SAFE_METHODS:
            refused = check_write(gate, request, by_bearer)
            if refused is not None:
                return refused
        answer = await call_next(request)
        answer.headers.setdefault("x-content-type-options", "nosniff")
        answer.headers.setdefault("x-frame-options", "DENY")
        return answer

    return check
