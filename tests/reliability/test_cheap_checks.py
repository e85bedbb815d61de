"""Cheap checks first: what cannot fit the context is refused before (or without) the work.

A 4 MB prompt used to be tokenized on the engine thread before the context check (16 s,
holding every other request's decode steps); ``max_tokens`` past the context generated until
the request timed out. Both are now refused at once, and a small request beside them is
answered as if they were not there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.continuous import ContinuousEngine
from chattune.serving.worker.engines import GenerationParams, PromptTooLong, complete


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[ContinuousEngine]:
    engine = ContinuousEngine(tiny_model_dir, "tiny:1", DeploymentSettings(dtype="float32"))
    engine.start()
    deadline = time.monotonic() + 180  # the machine may be shared
    while not engine.is_ready():
        assert engine.load_error is None and time.monotonic() < deadline
        time.sleep(0.05)
    yield engine
    engine.stop()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_max_tokens_past_the_context_is_refused_at_once(engine: ContinuousEngine) -> None:
    params = GenerationParams(max_new_tokens=engine.context)
    started = time.monotonic()
    with pytest.raises(PromptTooLong, match=f"max_tokens {engine.context} leaves no room"):
        asyncio.run(asyncio.wait_for(complete(engine, user("hi"), params), 10))
    assert time.monotonic() - started < 5


def test_a_huge_prompt_is_refused_without_tokenizing_and_blocks_nobody(
    engine: ContinuousEngine,
) -> None:
    huge = user("word " * 800_000)  # 4 MB: hundreds of thousands of tokens

    async def both() -> tuple[BaseException | None, float, float]:
        started = time.monotonic()
        big = asyncio.ensure_future(complete(engine, huge, GenerationParams(max_new_tokens=4)))
        small = await complete(engine, user("hello"), GenerationParams(max_new_tokens=4))
        small_done = time.monotonic() - started
        error = (await asyncio.gather(big, return_exceptions=True))[0]
        assert small.completion_tokens == 4
        return error, small_done, time.monotonic() - started

    error, small_done, big_done = asyncio.run(asyncio.wait_for(both(), 10))
    assert isinstance(error, PromptTooLong) and "characters" in str(error), error
    assert big_done < 3 and small_done < 3, (big_done, small_done)
