"""The transformers engine on the tiny real model: batching, stops, template, streaming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chattune.serving.settings import DeploymentSettings
from chattune.serving.worker.engines import Completion, GenerationParams, PromptTooLong, complete
from chattune.serving.worker.transformers_engine import TransformersEngine

GREEDY = GenerationParams(max_new_tokens=6)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[TransformersEngine]:
    settings = DeploymentSettings(dtype="float32")  # no timing at load: tests stay quick
    engine = TransformersEngine(tiny_model_dir, "tiny:1", settings, batch_window_ms=50)
    engine.start()
    deadline = time.monotonic() + 180  # the machine may be shared
    while not engine.is_ready():
        assert engine.load_error is None and time.monotonic() < deadline
        time.sleep(0.05)
    calls: list[int] = []
    generate = engine.model.generate

    def counting_generate(**kwargs: object) -> object:
        calls.append(kwargs["input_ids"].shape[0])  # type: ignore[attr-defined]
        return generate(**kwargs)

    engine.model.generate = counting_generate
    engine.batch_sizes = calls  # type: ignore[attr-defined]
    yield engine
    engine.stop()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def run_all(
    engine: TransformersEngine, jobs: list[tuple[list, GenerationParams]]
) -> list[Completion]:
    async def go() -> list[Completion]:
        return await asyncio.gather(*(complete(engine, m, p) for m, p in jobs))

    return asyncio.run(go())


def test_concurrent_requests_run_as_one_padded_batch(engine: TransformersEngine) -> None:
    prompts = [user("hi"), user("tell me a long story about the sea"), user("ok then")]
    engine.batch_sizes.clear()  # type: ignore[attr-defined]
    batched = run_all(engine, [(p, GREEDY) for p in prompts])
    assert engine.batch_sizes == [3]  # type: ignore[attr-defined]
    alone = [run_all(engine, [(p, GREEDY)])[0] for p in prompts]
    # Left padding must not change greedy answers.
    assert [c.text for c in batched] == [c.text for c in alone]
    assert all(c.completion_tokens == 6 and c.finish_reason == "length" for c in batched)
    assert batched[0].prompt_tokens < batched[1].prompt_tokens


def test_different_parameters_run_in_separate_batches(engine: TransformersEngine) -> None:
    engine.batch_sizes.clear()  # type: ignore[attr-defined]
    other = GenerationParams(max_new_tokens=3)
    run_all(engine, [(user("a"), GREEDY), (user("b"), other), (user("c"), GREEDY)])
    assert sorted(engine.batch_sizes) == [1, 2]  # type: ignore[attr-defined]


def test_stops_on_end_of_turn_token(engine: TransformersEngine) -> None:
    import torch

    with torch.inference_mode():
        logits = engine.model(torch.tensor([engine._encode(user("hi"))])).logits
    token = int(logits[0, -1].argmax())  # the greedy first answer token
    saved = engine.eos_ids
    engine.eos_ids = {token}  # make the model's first answer token the end of its turn
    try:
        done = run_all(engine, [(user("hi"), GREEDY)])[0]
    finally:
        engine.eos_ids = saved
    assert (done.text, done.finish_reason, done.completion_tokens) == ("", "stop", 0)


def test_system_message_is_folded_like_training(engine: TransformersEngine) -> None:
    with_system = [{"role": "system", "content": "Answer in French."}, *user("hi")]
    plain, folded = run_all(engine, [(user("hi"), GREEDY), (with_system, GREEDY)])
    # Phi-3's template drops system messages; serving keeps the text by folding it in.
    assert folded.prompt_tokens > plain.prompt_tokens + 3


def test_prompt_longer_than_context_is_refused(engine: TransformersEngine) -> None:
    saved = engine.context
    engine.context = 8
    try:
        with pytest.raises(PromptTooLong, match="context is 8 tokens"):
            run_all(engine, [(user("hello there"), GREEDY)])
    finally:
        engine.context = saved


def test_stream_yields_deltas_that_join_to_the_answer(engine: TransformersEngine) -> None:
    async def go() -> list:
        return [d async for d in engine.stream(user("hi"), GREEDY)]

    deltas = asyncio.run(go())
    assert deltas[-1].finish_reason == "length"
    assert "".join(d.text for d in deltas) == run_all(engine, [(user("hi"), GREEDY)])[0].text
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_static_batches_give_logprobs_and_seeded_samples(engine: TransformersEngine) -> None:
    from chattune.serving.worker.engines import join

    with_lp = asyncio.run(join(engine.stream(user("hi"), GenerationParams(4, logprobs=2))))
    assert len(with_lp.logprobs) == with_lp.completion_tokens
    assert all(len(t.top) == 2 and t.top[0][1] >= t.logprob - 1e-4 for t in with_lp.logprobs)
    seeded = GenerationParams(6, do_sample=True, temperature=0.9, seed=11)
    first, again = (run_all(engine, [(user("hi"), seeded)])[0].text for _ in range(2))
    assert first == again


def test_a_final_assistant_message_is_continued_not_closed(engine: TransformersEngine) -> None:
    """The prompt stops right after the final assistant text (no end-of-turn), as
    transformers' chat pipeline continues it; a new turn closes it first."""
    conversation = [*user("Write a haiku"), {"role": "assistant", "content": "Autumn moon"}]
    continued = engine.tokenizer.decode(engine._encode(conversation, continue_final=True))
    new_turn = engine.tokenizer.decode(engine._encode(conversation))
    assert continued.endswith("Autumn moon") and "<|assistant|>" in continued
    assert new_turn.startswith(continued) and new_turn != continued
    params = GenerationParams(max_new_tokens=4, continue_final=True)
    [done] = run_all(engine, [(conversation, params)])
    assert done.prompt_tokens == len(engine._encode(conversation, continue_final=True))
    assert done.completion_tokens == 4


def test_static_batches_apply_bias_and_penalties(engine: TransformersEngine) -> None:
    prompt = user("again and again")
    plain = run_all(engine, [(prompt, GenerationParams(max_new_tokens=8))])[0]
    first = engine.tokenizer(plain.text, add_special_tokens=False)["input_ids"][0]
    word = engine.tokenizer(" hello", add_special_tokens=False)["input_ids"][-1]
    text = engine.tokenizer.decode([word]).strip()
    repeat = GenerationParams(max_new_tokens=8, logit_bias=((word, 2.0),))
    banned, repeated, penalized = run_all(
        engine,
        [
            (prompt, GenerationParams(max_new_tokens=8, logit_bias=((first, -100.0),))),
            (prompt, repeat),
            (prompt, replace(repeat, frequency_penalty=1.0)),
        ],
    )
    assert not banned.text.startswith(engine.tokenizer.decode([first]))
    assert (repeated.text.count(text), penalized.text.count(text)) == (8, 2)
