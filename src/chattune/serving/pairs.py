"""Opt-in mirror pairs: for a mirrored request, the live answer and the mirror's answer with
their latencies and statuses, kept in the workspace (bounded by count and age) for
``chattune endpoints compare``.

Off unless the endpoint's folder has ``mirror-pairs.json`` (``{"keep": N, "days": D}``,
written by ``chattune endpoints mirror-pairs E --keep N --days D``). The gateway reads it
again when it changes, so turning it on or off needs no restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("chattune.serving.gateway")

SETTINGS_FILE = "mirror-pairs.json"
MAX_ANSWER_BYTES = 64 * 1024
"""Bytes of an answer kept for the pair (the rest still streams to the client)."""


@dataclass(frozen=True)
class PairSettings:
    keep: int
    """The most pairs kept for the endpoint (the oldest go first)."""
    days: float
    """Pairs older than this go."""


def read_settings(folder: Path) -> PairSettings | None:
    """The endpoint's opt-in, or None (off) when there is none or it keeps nothing."""
    try:
        data = json.loads((folder / SETTINGS_FILE).read_text())
        found = PairSettings(int(data["keep"]), float(data["days"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if found.keep > 0 and found.days > 0 else None


def answer_text(body: bytes) -> str:
    """The assistant text of a chat answer: a JSON completion, or an SSE stream's deltas."""
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            return str(data["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError):
            return ""
    parts = []
    for line in text.splitlines():
        if not line.startswith("data:") or line.strip() == "data: [DONE]":
            continue
        try:
            delta = json.loads(line[5:])["choices"][0].get("delta", {})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue
        parts.append(delta.get("content") or "")
    return "".join(parts)


@dataclass
class Pair:
    """One mirrored request's two sides, saved once both are done."""

    live: str
    mirror: str
    save: Callable[[dict[str, Any]], None]
    started: float = field(default_factory=time.perf_counter)
    sides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def done(self, side: str, status: int | None, body: bytes, error: str | None = None) -> None:
        self.sides[side] = {
            "status": status,
            "latency_s": round(time.perf_counter() - self.started, 4),
            "answer": answer_text(body) if status == 200 else "",
            "error": error,
        }
        if len(self.sides) == 2:
            self.save(
                {"live_deployment": self.live, "mirror_deployment": self.mirror, **self.sides}
            )

    async def capture(self, chunks: AsyncIterator[bytes], status: int) -> AsyncIterator[bytes]:
        """Pass the live answer through while keeping its first bytes."""
        kept = bytearray()
        error = None
        try:
            async for chunk in chunks:
                if len(kept) < MAX_ANSWER_BYTES:
                    kept += chunk[: MAX_ANSWER_BYTES - len(kept)]
                yield chunk
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.done("live", status if error is None else None, bytes(kept), error)


class PairRecorder:
    """Starts pairs while the endpoint opts in; writes them to the store off the event loop."""

    def __init__(self, folder: Path, write: Callable[[dict[str, Any], PairSettings], None]):
        self.folder = folder
        self.write = write
        self._seen: tuple[float, PairSettings | None] = (-1.0, None)

    def settings(self) -> PairSettings | None:
        try:
            mtime = (self.folder / SETTINGS_FILE).stat().st_mtime
        except OSError:
            return None
        if mtime != self._seen[0]:
            self._seen = (mtime, read_settings(self.folder))
        return self._seen[1]

    def begin(self, live: str, mirror: str) -> Pair | None:
        found = self.settings()
        if found is None:
            return None
        return Pair(live, mirror, lambda pair: self._keep(pair, found))

    def _keep(self, pair: dict[str, Any], settings: PairSettings) -> None:
        task = asyncio.get_running_loop().run_in_executor(None, self._write, pair, settings)
        task.add_done_callback(lambda _: None)

    def _write(self, pair: dict[str, Any], settings: PairSettings) -> None:
        try:
            self.write(pair, settings)
        except Exception as exc:
            log.warning("could not keep a mirror pair: %s", exc)


def store_writer(
    database_uri: str, endpoint: str
) -> Callable[[dict[str, Any], PairSettings], None]:
    """Write pairs into the workspace's store, bounded by the settings."""

    def write(pair: dict[str, Any], settings: PairSettings) -> None:
        from chattune.store import open_store
        from chattune.store.resources import MirrorPairStore

        pairs = MirrorPairStore(open_store(database_uri).db)
        pairs.add(endpoint, pair, settings.keep, settings.days * 86400)

    return write
