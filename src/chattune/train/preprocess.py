"""Stage `preprocess`: conversations → token ids and assistant-only labels (model's template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chattune.errors import ValidationError
from chattune.train.results import Hooks, ImportedModel, Preprocessed, SplitStats
from chattune.train.template import Example, tokenize_conversation


def run(
    model: ImportedModel, data: dict[str, str], max_seq_length: int, out_dir: Path, hooks: Hooks
) -> Preprocessed:
    """Tokenize every split; drop rows truncated to no assistant tokens; fail if none remain.

    ``max_seq_length`` <= 0 means the model's context length.
    """
    from transformers import AutoTokenizer

    from chattune.data.chat import template_drops_system

    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    max_len = max_seq_length if max_seq_length > 0 else model.context_length
    out_dir.mkdir(parents=True, exist_ok=True)
    if template_drops_system(tokenizer):
        hooks.log.info(
            "the chat template drops system messages: folding them into the first user turn"
        )
    splits = {
        split: _split(tokenizer, split, path, max_len, out_dir, hooks)
        for split, path in data.items()
    }
    return Preprocessed(max_seq_length=max_len, splits=splits)


def _split(
    tokenizer: Any, split: str, path: str, max_len: int, out_dir: Path, hooks: Hooks
) -> SplitStats:
    from chattune.data.readers import load_conversations

    examples, truncated, dropped = [], 0, 0
    for conv in load_conversations(path):
        ex = tokenize_conversation(tokenizer, conv.messages, max_len=None)
        if len(ex.input_ids) > max_len:
            truncated += 1
            ex = Example(ex.input_ids[:max_len], ex.labels[:max_len])
        if ex.n_target == 0:
            dropped += 1
            continue
        examples.append(ex)
    if not examples:
        raise ValidationError(
            f"data.{split} {path}: no assistant tokens left after truncation to {max_len}",
            "raise parameters.max_seq_length or use conversations with assistant turns",
        )
    file = out_dir / f"{split}.jsonl"
    write_examples(file, examples)
    stats = SplitStats(
        file=str(file),
        examples=len(examples),
        tokens=sum(len(e.input_ids) for e in examples),
        target_tokens=sum(e.n_target for e in examples),
        truncated=truncated,
        dropped_no_target=dropped,
    )
    hooks.log.info(
        "%s: %d examples, %d tokens (%d trained on), %d truncated, %d dropped",
        split,
        stats.examples,
        stats.tokens,
        stats.target_tokens,
        truncated,
        dropped,
    )
    return stats


def write_examples(path: Path, examples: list[Example]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for ex in examples:
            f.write(json.dumps({"input_ids": ex.input_ids, "labels": ex.labels}) + "\n")
    tmp.replace(path)


def read_examples(path: str | Path) -> list[Example]:
    with open(path) as f:
        return [Example(**json.loads(line)) for line in f]
