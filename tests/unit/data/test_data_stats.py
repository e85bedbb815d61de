"""describe(): counts, lengths, duplicates; token lengths and system folding with a tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chattune.data.schema import Conversation
from chattune.data.stats import describe

# Phi-3's template shape: system messages are silently dropped.
DROPS_SYSTEM = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ '<|user|> ' + m['content'] + ' <|end|> ' }}"
    "{% elif m['role'] == 'assistant' %}{{ '<|assistant|> ' + m['content'] + ' <|end|> ' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)
KEEPS_SYSTEM = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' <|end|> ' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def _tokenizer(template: str) -> Any:
    """A real fast tokenizer (whitespace word level), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [
        "<unk>",
        "<|user|>",
        "<|assistant|>",
        "<|system|>",
        "<|end|>",
        "hi",
        "hello",
        "be",
        "brief",
        "ok",
    ]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", model_max_length=9
    )
    tokenizer.chat_template = template
    return tokenizer


ROWS = [
    Conversation(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        prompt="hi",
        prompt_id="p1",
    ),
    Conversation(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "ok"},
        ],
        prompt="hi",
        prompt_id="p1",
    ),
    [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}],
]


def test_describe_counts_without_tokenizer() -> None:
    assert describe(ROWS) == {
        "rows": 3,
        "turns": {"min": 2, "mean": 2.67, "max": 4},
        "chars": {"min": 7, "mean": 10.0, "max": 16, "total": 30},
        "roles": {"system": 1, "user": 4, "assistant": 4},
        "system_share": 0.3333,
        "duplicate_prompt_ids": 1,
    }
    assert describe([])["rows"] == 0


def test_token_lengths_fold_system_when_template_drops_it() -> None:
    stats = describe(ROWS, _tokenizer(DROPS_SYSTEM))
    # row 2 renders "<|user|> be brief\n\nhi <|end|> ...": 14 tokens, not the 12 of dropping it
    assert stats["tokens"] == {
        "min": 6,
        "mean": 8.67,
        "max": 14,
        "total": 26,
        "model_max_length": 9,
        "over_max_length": 1,
    }
    assert (stats["template_drops_system"], stats["system_folded"]) == (True, 1)
    kept = describe(ROWS, _tokenizer(KEEPS_SYSTEM))
    assert (kept["template_drops_system"], kept["system_folded"]) == (False, 0)
    assert kept["tokens"]["max"] == 16  # "<|system|> be brief <|end|>" + the 12 others


def test_histogram_png(tmp_path: Path) -> None:
    stats = describe(ROWS, plot=tmp_path / "plots" / "lengths.png")
    png = Path(stats["plot"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["lengths.png"]


@pytest.mark.parametrize("n", [0, 1])
def test_single_or_no_row_summaries(n: int) -> None:
    assert describe(ROWS[:n])["turns"]["max"] == (2 if n else 0)
