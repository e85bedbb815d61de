"""Continuous batching on the tiny real model: rows join a running batch and answer exactly
what they would alone; per-row parameters, seeds, stops, logprobs, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.continuous import ContinuousEngine, groups, supported
from chattune.serving.worker.engines import Completion, GenerationParams, complete, join

GREEDY = GenerationParams(max_new_tokens=8)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[ContinuousEngine]:
    settings = DeploymentSettings(max_batch_size=4, dtype="float32")
    engine = ContinuousEngine(tiny_model_dir, "tiny:1", settings)
    engine.start()
    deadline = time.monotonic() + 180  # the machine may be shared
    while not engine.is_ready():
        assert engine.load_error is None and time.monotonic() < deadline
        time.sleep(0.05)
    shapes: list[tuple[int, int]] = []
    forward = engine.model.forward

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        shapes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    engine.model.forward = counting_forward
    engine.shapes = shapes  # type: ignore[attr-defined]
    yield engine
    engine.stop()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def alone(engine: ContinuousEngine, text: str, max_new: int) -> list[int]:
    """Greedy tokens from plain transformers ``generate`` for one prompt, no padding."""
    import torch

    ids = torch.tensor([engine._encode(user(text))])
    with torch.inference_mode():
        out = engine.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=sorted(engine.eos_ids),
            pad_token_id=engine.pad_id,
        )
    tokens = out[0, ids.shape[1] :].tolist()
    return [t for t in tokens if t not in engine.eos_ids]


def text_of(engine: ContinuousEngine, tokens: list[int]) -> str:
    return engine.tokenizer.decode(tokens, skip_special_tokens=True)


def test_the_tiny_model_can_batch_continuously(engine: ContinuousEngine) -> None:
    assert supported(engine.model)


def test_rows_joining_a_running_batch_answer_as_generate_alone(engine: ContinuousEngine) -> None:
    prompts = ["tell me a long story about the sea", "hi", "what is two plus two?"]
    long = GenerationParams(max_new_tokens=300)

    async def go() -> list[Completion]:
        stream = engine.stream(user(prompts[0]), long)
        head = await anext(stream)  # type: ignore[call-overload]
        # The first row is decoding when the others arrive.
        first = asyncio.ensure_future(join(stream))
        rest = await asyncio.gather(*(complete(engine, user(p), GREEDY) for p in prompts[1:]))
        tail = await first
        return [replace(tail, text=head.text + tail.text), *rest]

    engine.shapes.clear()  # type: ignore[attr-defined]
    done = asyncio.run(go())
    shapes = list(engine.shapes)  # type: ignore[attr-defined]
    for completion, prompt, params in zip(done, prompts, [long, GREEDY, GREEDY], strict=True):
        assert completion.text == text_of(engine, alone(engine, prompt, params.max_new_tokens))
    # The late rows were prefilled while the first one ran, then decoded with it.
    first_prefill = shapes[0]
    assert first_prefill[0] == 1 and first_prefill[1] > 1
    assert any(rows == 3 and width == 1 for rows, width in shapes)
    assert len(shapes) <= done[0].completion_tokens + 2  # shared steps, not one after another


def test_each_row_keeps_its_own_parameters(engine: ContinuousEngine) -> None:
    sampled = GenerationParams(max_new_tokens=5, do_sample=True, temperature=0.8, seed=3)

    async def go() -> list[Completion]:
        jobs = [(user("a"), GREEDY), (user("b"), sampled), (user("c"), GenerationParams(2))]
        return await asyncio.gather(*(complete(engine, m, p) for m, p in jobs))

    greedy, seeded, short = asyncio.run(go())
    assert greedy.text == text_of(engine, alone(engine, "a", 8))
    assert short.completion_tokens <= 2 and seeded.completion_tokens <= 5
    again = asyncio.run(complete(engine, user("b"), sampled))  # alone this time
    assert again.text == seeded.text  # the seed, not the batch, decides the sample
    other = [
        asyncio.run(complete(engine, user("b"), GenerationParams(5, True, 0.8, seed=s))).text
        for s in (4, 5, 6)
    ]
    assert any(o != seeded.text for o in other)


def test_end_token_stops_the_row(engine: ContinuousEngine) -> None:
    first = alone(engine, "hi", 1)[0]
    saved = engine.eos_ids
    engine.eos_ids = {first}
    try:
        done = asyncio.run(complete(engine, user("hi"), GREEDY))
    finally:
        engine.eos_ids = saved
    assert (done.text, done.finish_reason, done.completion_tokens) == ("", "stop", 0)


def test_logprobs_are_the_models(engine: ContinuousEngine) -> None:
    params = GenerationParams(max_new_tokens=4, logprobs=3)
    done = asyncio.run(join(engine.stream(user("hi"), params)))
    assert len(done.logprobs) == done.completion_tokens == 4
    for entry in done.logprobs:
        assert len(entry.top) == 3 and entry.logprob <= 0
        assert entry.top[0][1] == pytest.approx(entry.logprob)  # greedy took the best


def test_a_cancelled_row_leaves_the_batch(engine: ContinuousEngine) -> None:
    async def go() -> None:
        stream = engine.stream(user("tell me everything"), GenerationParams(max_new_tokens=400))
        await anext(stream)  # type: ignore[call-overload]
        await stream.aclose()  # type: ignore[attr-defined]

    engine.shapes.clear()  # type: ignore[attr-defined]
    asyncio.run(go())
    time.sleep(0.3)
    steps = len(engine.shapes)  # type: ignore[attr-defined]
    time.sleep(0.3)
    assert len(engine.shapes) == steps < 400  # type: ignore[attr-defined]


def test_a_request_that_cannot_join_fails_alone_and_the_engine_keeps_serving(
    engine: ContinuousEngine,
) -> None:
    """A row whose set-up raises (here a seed past 64 bits, which the HTTP layer refuses
    first) gets the error; the batch loop lives on for the requests after it."""
    bad = GenerationParams(4, True, 0.8, seed=2**70)

    async def go() -> tuple[BaseException | Completion, Completion]:
        failed = await asyncio.wait_for(
            asyncio.gather(complete(engine, user("x"), bad), return_exceptions=True), 30
        )
        return failed[0], await asyncio.wait_for(complete(engine, user("y"), GREEDY), 30)

    failed, after = asyncio.run(go())
    assert isinstance(failed, RuntimeError) and "could not start" in str(failed), failed
    assert after.text is not None


def test_prompts_are_prefilled_in_groups_of_similar_length() -> None:
    lengths = [87, 44, 69, 71, 49, 44, 46, 73, 47, 45, 84, 79, 87, 39, 104, 86]
    found = groups(lengths, pass_cost=32)
    assert sorted(i for group in found for i in group) == list(range(16))
    padded = sum(len(g) * max(lengths[i] for i in g) for g in found)
    assert len(found) > 1 and padded < 0.7 * 16 * 104  # padding to 104 for all: 1,664
    assert groups([10, 10, 10]) == [[0, 1, 2]]  # same length: one pass
    assert groups([10, 500], pass_cost=32) == [[0], [1]]
    assert groups([]) == []


def test_logit_bias_and_penalties_are_per_row(engine: ContinuousEngine) -> None:
    """A -100 bias on the greedy first token changes it; a +2 bias makes a token repeat
    (the tiny model's logits span about 1) and each penalty stops the repetition; a plain row
    of the same batch answers as alone."""
    prompt = "say it again and again"
    plain = alone(engine, prompt, 12)
    word = engine.tokenizer(" hello", add_special_tokens=False)["input_ids"][-1]
    text = engine.tokenizer.decode([word])
    repeat = GenerationParams(max_new_tokens=12, logit_bias=((word, 2.0),))
    params = [
        replace(repeat, logit_bias=((plain[0], -100.0),)),
        repeat,
        replace(repeat, presence_penalty=2.0),
        replace(repeat, frequency_penalty=1.0),
        replace(repeat, repetition_penalty=10.0),
        GenerationParams(max_new_tokens=12),
    ]

    async def go() -> list[Completion]:
        return await asyncio.gather(*(complete(engine, user(prompt), p) for p in params))

    banned, repeated, present, frequent, repetition, same = asyncio.run(go())
    assert not banned.text.startswith(text_of(engine, plain[:1]))
    assert repeated.text.count(text.strip()) == 12
    assert present.text.count(text.strip()) == 1 and repetition.text.count(text.strip()) == 1
    assert frequent.text.count(text.strip()) == 2
    assert same.text == text_of(engine, plain)
