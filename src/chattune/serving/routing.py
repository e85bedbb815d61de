"""The gateway's view of where requests can go: a snapshot the supervisor rebuilds each tick.

>>> table = RoutingTable(traffic={"demo": 100}, instances={"demo": ["http://127.0.0.1:9001"]})
>>> table.choose_instance("demo")
'http://127.0.0.1:9001'
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class RoutingTable:
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    instances: dict[str, list[str]] = field(default_factory=dict)
    """Base URLs of the ready instances of each deployment (every deployment has a key)."""
    statuses: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    """Seconds the gateway waits on a deployment (its request timeout plus a margin)."""
    inflight: Counter[str] = field(default_factory=Counter)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def choose_instance(self, deployment: str) -> str | None:
        """The ready instance with fewest requests in flight (round-robin among equals)."""
        urls = self.instances.get(deployment) or []
        if not urls:
            return None
        start = next(self._turn) % len(urls)
        rotated = urls[start:] + urls[:start]
        return min(rotated, key=lambda url: self.inflight[url])

    def replace(self, other: RoutingTable) -> None:
        """Adopt ``other``'s routes, keeping in-flight counts and the round-robin turn."""
        self.traffic, self.mirror = other.traffic, other.mirror
        self.instances, self.statuses, self.timeouts = (
            other.instances,
            other.statuses,
            other.timeouts,
        )
