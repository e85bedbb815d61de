"""Stage `preprocess`: conversations → token ids and assistant-only labels (model's template)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any

from chattune.compute import lifeline
from chattune.data.schema import Conversation, Message
from chattune.errors import ValidationError
from chattune.train.results import Hooks, ImportedModel, Preprocessed, SplitStats
from chattune.train.template import (
    bound_messages,
    max_token_chars,
    tokenize_truncated,
)
from chattune.train.tokens import SplitWriter, TokenSplit, open_split


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


BATCH = 256
"""Conversations per tokenizer batch call (and per task of a worker process)."""


def _split(
    tokenizer: Any, split: str, path: str, max_len: int, out_dir: Path, hooks: Hooks
) -> SplitStats:
    """Stream one split: read, cut, tokenize in batches, append to the split's arrays;
    nothing held per row."""
    from chattune.data.readers import iter_conversations

    max_chars = max_len * max_token_chars(tokenizer)
    folder = out_dir / f"{split}.tokens"
    totals = {"examples": 0, "tokens": 0, "target": 0, "truncated": 0, "dropped": 0}
    with SplitWriter(folder) as out:  # a bad row found late leaves no partial output
        chunks = _chunks(iter_conversations(path), BATCH)
        for batch in _tokenized(tokenizer, chunks, max_len, max_chars):
            for input_ids, labels, target, truncated in batch:
                totals["truncated"] += truncated
                if not target:
                    totals["dropped"] += 1
                    continue
                out.add(input_ids, labels)
                totals["examples"] += 1
                totals["tokens"] += len(input_ids)
                totals["target"] += target
        if not totals["examples"]:
            raise ValidationError(
                f"data.{split} {path}: no assistant tokens left after truncation to {max_len}",
                "raise parameters.max_seq_length or use conversations with assistant turns",
            )
        out.commit()
    stats = SplitStats(
        file=str(folder),
        examples=totals["examples"],
        tokens=totals["tokens"],
        target_tokens=totals["target"],
        truncated=totals["truncated"],
        dropped_no_target=totals["dropped"],
    )
    hooks.log.info(
        "%s: %d examples, %d tokens (%d trained on), %d truncated, %d dropped",
        split,
        stats.examples,
        stats.tokens,
        stats.target_tokens,
        stats.truncated,
        stats.dropped_no_target,
    )
    return stats


def _chunks(rows: Iterable[Conversation], size: int) -> Iterator[list[list[Message]]]:
    chunk: list[list[Message]] = []
    for conv in rows:
        chunk.append(conv.messages)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


Written = tuple[Any, Any, int, bool]
"""One example: its token ids and labels (int32 arrays: compact between processes), its
target tokens, and whether it was cut."""


def _tokenized(
    tokenizer: Any, chunks: Iterator[list[list[Message]]], max_len: int, max_chars: int
) -> Iterator[list[Written]]:
    """Tokenized chunks in order; over ``num_proc`` worker processes when there are cores.

    Chat templates render in Python (one process per core is the only parallelism that
    helps them). The reader keeps at most two chunks per worker in flight, so it reads
    ahead while the workers tokenize, and memory stays flat.
    """
    procs = num_proc()
    head = list(islice(chunks, 2))
    if procs <= 1 or len(head) < 2:  # one chunk or one CPU: workers would only cost time
        for chunk in chain(head, chunks):
            yield prepare_chunk(tokenizer, chunk, max_len, max_chars)
        return
    chunks = chain(head, chunks)
    import multiprocessing
    from collections import deque

    # Spawned, not forked: a job's process has threads (tracking, progress), and a fork
    # copies whatever locks they hold. Each worker loads the tokenizer from its folder.
    job = partial(_worker_chunk, max_len=max_len, max_chars=max_chars)
    context = multiprocessing.get_context("spawn")
    with context.Pool(procs, _init_worker, (tokenizer.name_or_path,)) as pool:
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(job, (chunk,)))
            if len(pending) >= 2 * procs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def num_proc() -> int:
    """Worker processes for preprocessing: ``$CHATTUNE_PREPROCESS_PROCS``, else the CPUs."""
    value = os.environ.get("CHATTUNE_PREPROCESS_PROCS")
    if value:
        return max(int(value), 1)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_WORKER_TOKENIZER: Any = None


def _init_worker(tokenizer_dir: str) -> None:
    lifeline.hold_multiprocessing_parent()  # a killed job takes its workers along
    # One thread per worker: the workers already fill the cores, and the Rust tokenizer's
    # own thread pool would only spin against them.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    from transformers import AutoTokenizer

    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = AutoTokenizer.from_pretrained(tokenizer_dir)


def _worker_chunk(chunk: list[list[Message]], max_len: int, max_chars: int) -> list[Written]:
    return prepare_chunk(_WORKER_TOKENIZER, chunk, max_len, max_chars)


def prepare_chunk(
    tokenizer: Any, chunk: list[list[Message]], max_len: int, max_chars: int
) -> list[Written]:
    """Cut, render and tokenize one chunk (in a worker: to arrays, which pickle compactly)."""
    import numpy as np

    bounded = [bound_messages(messages, max_chars) for messages in chunk]
    examples = tokenize_truncated(tokenizer, [m for m, _ in bounded], max_len)
    out = []
    for (ex, truncated), (_, cut) in zip(examples, bounded, strict=True):
        ids, labels = np.asarray(ex.input_ids, np.int32), np.asarray(ex.labels, np.int32)
        out.append((ids, labels, ex.n_target, truncated or cut))
    return out


def read_examples(path: str | Path) -> TokenSplit:
    """A preprocessed split (``SplitStats.file``), memory-mapped: a sequence of
    :class:`~chattune.train.template.Example` that reads a row only when it is indexed."""
    return open_split(path)
