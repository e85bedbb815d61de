"""Stage `preprocess`: conversations → token ids and assistant-only labels (model's template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chattune.errors import ValidationError
from chattune.jobs.context import StageContext
from chattune.train.template import Example, tokenize_conversation


def run(ctx: StageContext) -> dict[str, Any]:
    """Tokenize every split; drop rows truncated to no assistant tokens; fail if none remain."""
    from transformers import AutoTokenizer

    from chattune.data.chat import template_drops_system
    from chattune.data.readers import load_conversations

    imported = ctx.outputs["model_import"]
    tokenizer = AutoTokenizer.from_pretrained(imported["model_dir"])
    max_len = ctx.params.max_seq_length
    if max_len <= 0:
        max_len = imported["context_length"]
    out_dir = ctx.stage_dir("preprocess")
    result: dict[str, Any] = {"max_seq_length": max_len, "splits": {}}
    if template_drops_system(tokenizer):
        ctx.log.info(
            "the chat template drops system messages: folding them into the first user turn"
        )
    for split, path in ctx.spec.data.model_dump().items():
        if path is None:
            continue
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
        stats = {
            "file": str(file),
            "examples": len(examples),
            "tokens": sum(len(e.input_ids) for e in examples),
            "target_tokens": sum(e.n_target for e in examples),
            "truncated": truncated,
            "dropped_no_target": dropped,
        }
        result["splits"][split] = stats
        ctx.log.info(
            "%s: %d examples, %d tokens (%d trained on), %d truncated, %d dropped",
            split,
            stats["examples"],
            stats["tokens"],
            stats["target_tokens"],
            truncated,
            dropped,
        )
    return result


def write_examples(path: Path, examples: list[Example]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for ex in examples:
            f.write(json.dumps({"input_ids": ex.input_ids, "labels": ex.labels}) + "\n")
    tmp.replace(path)


def read_examples(path: str | Path) -> list[Example]:
    with open(path) as f:
        return [Example(**json.loads(line)) for line in f]
