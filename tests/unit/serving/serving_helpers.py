"""Helpers of the serving tests: a fake engine that streams a canned reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from chattune.data.schema import Message
from chattune.serving.worker.engines import Delta, GenerationParams


class FakeEngine:
    """An :class:`Engine` that answers ``reply`` word by word after ``delay`` seconds."""

    def __init__(
        self,
        reply: str = "Hello there friend",
        delay: float = 0.0,
        ready: bool = True,
        model_name: str = "fake:1",
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.ready = ready
        self.model_name = model_name
        self.load_error: str | None = None
        self.calls: list[tuple[list[Message], GenerationParams]] = []
        self.cancelled = 0

    def start(self) -> None:
        pass

    def is_ready(self) -> bool:
        return self.ready

    async def stream(
        self, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        self.calls.append((messages, params))
        try:
            await asyncio.sleep(self.delay)
            words = self.reply.split(" ")
            for i, word in enumerate(words):
                last = i == len(words) - 1
                yield Delta(
                    word if i == 0 else " " + word,
                    "stop" if last else None,
                    prompt_tokens=7,
                    completion_tokens=i + 1,
                )
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


class ByHost(httpx.AsyncBaseTransport):
    """Sends each request to the in-process app named by its host (one app per deployment)."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {h: httpx.ASGITransport(app=a) for h, a in apps.items()}  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)
