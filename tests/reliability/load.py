"""A bounded HTTP load generator for the endpoint tests: N concurrent clients share a request
budget and a deadline; every answer is recorded (status or exception name, latency)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    status: int | str
    """HTTP status, or the exception's name when no answer came."""
    seconds: float
    started: float
    code: str | None = None
    """``error.code`` of an error answer."""


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)

    def statuses(self) -> dict[int | str, int]:
        counted: dict[int | str, int] = {}
        for o in self.outcomes:
            counted[o.status] = counted.get(o.status, 0) + 1
        return counted

    def percentiles(self, only_ok: bool = True) -> dict[str, float]:
        times = sorted(o.seconds for o in self.outcomes if o.status == 200 or not only_ok)
        if not times:
            return {}
        pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
        return {"p50_ms": pick(0.5) * 1e3, "p95_ms": pick(0.95) * 1e3, "p99_ms": pick(0.99) * 1e3}


async def run_load(
    url: str,
    body: dict[str, object],
    headers: dict[str, str],
    *,
    total: int,
    clients: int,
    deadline_s: float,
    timeout_s: float = 60.0,
    every: Callable[[int], Awaitable[None] | None] | None = None,
) -> Load:
    """Send ``total`` requests from ``clients`` concurrent clients (stops at the deadline);
    ``every(n)`` is called after each answer with the count so far."""
    load = Load()
    budget = itertools.count()
    stop = time.monotonic() + deadline_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def one_client() -> None:
            while next(budget) < total and time.monotonic() < stop:
                started = time.monotonic()
                code = None
                try:
                    answer = await client.post(url, json=body, headers=headers)
                    status: int | str = answer.status_code
                    if status >= 400:
                        code = answer.json()["error"]["code"]
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                load.outcomes.append(Outcome(status, time.monotonic() - started, started, code))
                if every is not None:
                    maybe = every(len(load.outcomes))
                    if maybe is not None:
                        await maybe

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return load
