"""Where a gateway request goes: the routing table the supervisor rebuilds each tick, and the
choice of deployment (header, else traffic weights, plus an optional mirror).

>>> table = RoutingTable(traffic={"demo": 100}, instances={"demo": ["http://127.0.0.1:9001"]})
>>> route("my-ep", table, header=None, draw=lambda: 0.5)
('demo', None)
>>> table.choose_instance("demo")
'http://127.0.0.1:9001'
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from chattune.serving.http import DEPLOYMENT_HEADER, ApiError
from chattune.serving.traffic import pick, pick_mirror


@dataclass
class RoutingTable:
    """A snapshot of traffic and ready instances; the gateway app reads it per request."""

    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    instances: dict[str, list[str]] = field(default_factory=dict)
    """Base URLs of the ready instances of each deployment (every deployment has a key)."""
    statuses: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    """Seconds the gateway waits on a deployment (its request timeout plus a margin)."""
    models: dict[str, str] = field(default_factory=dict)
    """The model each deployment serves (``NAME:VERSION``)."""
    inflight: Counter[str] = field(default_factory=Counter)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def choose_instance(self, deployment: str, exclude: Collection[str] = ()) -> str | None:
        """The ready instance with fewest requests in flight (round-robin among equals), not
        one of ``exclude``."""
        urls = [url for url in self.instances.get(deployment) or [] if url not in exclude]
        if not urls:
            return None
        start = next(self._turn) % len(urls)
        rotated = urls[start:] + urls[:start]
        return min(rotated, key=lambda url: self.inflight[url])

    def replace(self, other: RoutingTable) -> None:
        """Adopt ``other``'s routes, keeping in-flight counts and the round-robin turn."""
        self.traffic, self.mirror = other.traffic, other.mirror
        self.instances, self.statuses, self.timeouts, self.models = (
            other.instances,
            other.statuses,
            other.timeouts,
            other.models,
        )

    def served_models(self) -> list[str]:
        """Every model a deployment with traffic or mirror traffic serves, sorted (the same
        list on every call, whatever the split)."""
        routed = {name for name, weight in (*self.traffic.items(), *self.mirror.items()) if weight}
        return sorted({self.models[name] for name in routed if name in self.models})

    def knows_model(self, endpoint: str, model: str) -> bool:
        """True when ``model`` names the endpoint, one of its deployments or a served model."""
        return model in (endpoint, *self.instances, *self.models.values())


def route(
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


def model_target(endpoint: str, table: RoutingTable, model: str | None) -> str | None:
    """The deployment an OpenAI ``model`` field asks for (``None``: route by traffic).

    ``model`` may name a deployment (served by it), a served model (traffic among the
    deployments serving it), or the endpoint itself (traffic); anything else is 404
    ``model_not_found``, as OpenAI answers.

    >>> model_target("ep", RoutingTable(instances={"blue": []}), "blue")
    'blue'
    """
    if not model or model == endpoint:
        return None
    if model in table.instances:
        return model
    serving = [name for name, served in table.models.items() if served == model]
    if not serving:
        known = ", ".join(sorted({endpoint, *table.instances, *table.models.values()}))
        raise ApiError(
            404,
            "model_not_found",
            f"model {model!r} is not served by endpoint {endpoint}; use one of: {known}",
        )
    if all(table.models.get(name) == model for name, w in table.traffic.items() if w > 0):
        return None  # every deployment with traffic serves it: keep the traffic split
    return max(serving, key=lambda name: table.traffic.get(name, 0))
