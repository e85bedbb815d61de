"""Fixtures for chat-data tests: a tiny LLaMA-Factory data folder and an isolated HF cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chattune.data.convert import prompt_id
from chattune.data.sample import SPLITS, build_ultrachat_sample, split_of


def _sharegpt(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": who, "value": text} for who, text in turns]


KTO = [
    {
        "messages": [
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Seven."},
        ],
        "label": True,
    },
    {
        "messages": [
            {"role": "user", "content": "Bad answer please."},
            {"role": "assistant", "content": "No."},
        ],
        "label": False,
    },
    {
        "messages": [
            {"role": "user", "content": "Count to two."},
            {"role": "assistant", "content": "One, two."},
            {"role": "user", "content": "And three?"},
            {"role": "assistant", "content": "Three."},
        ],
        "label": True,
    },
    {
        "messages": [
            {"role": "user", "content": "Empty reply."},
            {"role": "assistant", "content": "  "},
        ],
        "label": True,
    },  # dropped: empty
]
DPO = [
    {
        "conversations": _sharegpt(("human", "What is 2+2?")),
        "chosen": {"from": "gpt", "value": "4"},
        "rejected": {"from": "gpt", "value": "5"},
    },
    {
        "conversations": _sharegpt(("system", "Be brief."), ("human", "Capital of France?")),
        "chosen": {"from": "gpt", "value": "Paris."},
        "rejected": {"from": "gpt", "value": "Rome."},
    },
    {
        "conversations": _sharegpt(("human", "Hi"), ("gpt", "Hello")),  # dropped: gpt twice
        "chosen": {"from": "gpt", "value": "Hey"},
        "rejected": {"from": "gpt", "value": "Yo"},
    },
    {
        "conversations": _sharegpt(("human", "Name a prime.")),  # dropped: duplicate of kto row
        "chosen": {"from": "gpt", "value": "Two."},
        "rejected": {"from": "gpt", "value": "Four."},
    },
]
TOOLS = '[{"name": "get_time", "parameters": {}}]'
GLAIVE = [
    {
        "conversations": _sharegpt(
            ("human", "What time is it?"),
            ("function_call", '{"name": "get_time", "arguments": {}}'),
            ("observation", '{"time": "10:00"}'),
            ("gpt", "It is 10:00."),
        ),
        "tools": TOOLS,
    },
    {"conversations": _sharegpt(("human", "Tell a joke."), ("gpt", "A pun.")), "tools": "[]"},
    {
        "conversations": _sharegpt(  # dropped: function_call then gpt = two assistant turns
            ("human", "Weather?"), ("function_call", "{}"), ("gpt", "Sunny.")
        ),
        "tools": TOOLS,
    },
]
# One "Spell N." prompt per split (the first N whose hash lands there), so no split is empty.
SPELL = [
    next(f"Spell {n}." for n in range(10_000) if split_of(prompt_id(f"Spell {n}.")) == split)
    for split in SPLITS
]
ALPACA = [
    {"instruction": "Add the numbers.", "input": "1 and 2", "output": "3"},
    {"instruction": "Say hi.", "input": "", "output": "Hi!"},
    {"instruction": "Say nothing.", "input": "", "output": ""},  # dropped: empty
    *({"instruction": p, "input": "", "output": p.upper()} for p in SPELL),
]
KEPT_PROMPTS = [
    "Name a prime.",
    "Count to two.",
    "What is 2+2?",
    "Capital of France?",
    "What time is it?",
    "Tell a joke.",
    "Add the numbers.\n1 and 2",
    "Say hi.",
    *SPELL,
]


def write_llamafactory(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {
        "kto_en_demo.json": KTO,
        "dpo_en_demo.json": DPO,
        "glaive_toolcall_en_demo.json": GLAIVE,
        "alpaca_en_demo.json": ALPACA,
    }
    for name, rows in files.items():
        (folder / name).write_text(json.dumps(rows, indent=1))
    return folder


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep `datasets` caches inside the test's tmp folder."""
    import datasets

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


@pytest.fixture
def kept_prompts() -> list[str]:
    """The prompts of the fixture rows that survive conversion, in source order."""
    return list(KEPT_PROMPTS)


@pytest.fixture
def glaive_tools() -> str:
    return TOOLS


@pytest.fixture
def llamafactory_dir(tmp_path: Path) -> Path:
    return write_llamafactory(tmp_path / "llamafactory" / "data")


@pytest.fixture
def sample_dir(tmp_path: Path, llamafactory_dir: Path) -> Path:
    out = tmp_path / "ultrachat-sample"
    build_ultrachat_sample(llamafactory_dir, out)
    return out
