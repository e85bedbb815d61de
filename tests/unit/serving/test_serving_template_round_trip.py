"""Serving renders what training trained on: for the first k turns of a training conversation,
the token ids the worker sends the model are the prefix preprocess produced, up to and
including the assistant header, and the next training token is the first one trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from chattune.data.schema import Message
from chattune.serving.worker.transformers_engine import TransformersEngine
from chattune.train.template import IGNORE, tokenize_conversation

CONVERSATIONS: list[list[Message]] = [
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?\nOne word, please."},
        {"role": "assistant", "content": " Rome\n\n(since 1871)."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome — ciao!"},
    ],
    [
        {"role": "user", "content": "Write 2+2."},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "   spaces   "},
        {"role": "assistant", "content": "Ünïcödé 🚀 done"},
    ],
]


def engine_for(model: str) -> TransformersEngine:
    """A worker engine with the model's tokenizer (the weights are not needed to render)."""
    from transformers import AutoTokenizer

    from chattune.catalog import assets

    folder = assets.fetch([model])[model]
    engine = TransformersEngine(Path(folder), model)
    engine.tokenizer = AutoTokenizer.from_pretrained(folder)
    engine.context = 1 << 16
    return engine


@pytest.mark.parametrize("model", ["tiny-random-phi3", "SmolLM2-135M-Instruct"])
@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["with-system", "no-system"])
def test_worker_prompt_is_the_trained_prefix(model: str, conversation: list[Message]) -> None:
    engine = engine_for(model)
    trained = tokenize_conversation(engine.tokenizer, conversation)
    turns = [i for i, m in enumerate(conversation) if m["role"] == "assistant"]
    for k in turns:
        served = engine._encode(conversation[:k])
        assert trained.input_ids[: len(served)] == served, (model, k)
        # The prompt ends at the assistant header: what follows is what training taught.
        assert trained.labels[len(served)] != IGNORE, (model, k)
        assert trained.labels[len(served) - 1] == IGNORE, (model, k)


@pytest.mark.parametrize("model", ["tiny-random-phi3", "SmolLM2-135M-Instruct"])
def test_ultrachat_training_conversations_round_trip(
    model: str, ultrachat_sample_dir: Path
) -> None:
    from chattune.data.readers import load_conversations

    engine = engine_for(model)
    multi_turn = [
        c.messages for c in load_conversations(ultrachat_sample_dir) if len(c.messages) >= 4
    ][:3]
    assert multi_turn
    for messages in multi_turn:
        conversation: list[Message] = [{"role": "system", "content": "Be helpful."}, *messages]
        trained = tokenize_conversation(engine.tokenizer, conversation)
        for k in [i for i, m in enumerate(conversation) if m["role"] == "assistant"]:
            served = engine._encode(conversation[:k])
            assert trained.input_ids[: len(served)] == served, (model, k)
            assert trained.labels[len(served)] != IGNORE, (model, k)
