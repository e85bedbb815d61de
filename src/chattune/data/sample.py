"""Build ``ultrachat-sample``: real LLaMA-Factory demo chats in the ultrachat_200k layout.

The result loads like the hub dataset: ``datasets.load_dataset(str(folder))`` gives a
DatasetDict with ``train_sft``, ``test_sft``, ``train_gen`` and ``test_gen``, each with
``prompt``, ``prompt_id`` and ``messages``.

Splits. In ultrachat_200k the ``*_gen`` splits are rows of their own (not copies of the sft
rows) with the same schema and full ``messages``; generation recipes use ``prompt`` (or the
messages up to the first assistant turn). The sample does the same: every row lands in
exactly one split, chosen by its ``prompt_id`` hash, so a row never moves when others are
added or removed. Most rows go to the sft splits, which is what fine-tuning reads; train and
test are 90/10 within both the sft and the gen pair, like ultrachat.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chattune.data import convert
from chattune.data.hub_layout import write_hub_folder
from chattune.data.schema import Message, validate_conversation
from chattune.errors import AssetError

SOURCES: tuple[tuple[str, Callable[[dict[str, Any]], list[Message] | None]], ...] = (
    ("kto_en_demo.json", convert.from_kto),
    ("dpo_en_demo.json", convert.from_dpo),
    ("glaive_toolcall_en_demo.json", convert.from_glaive),
    ("alpaca_en_demo.json", convert.from_alpaca),
)
# Percent buckets of the prompt_id hash: [start, end) per split.
SPLITS = {"train_sft": (0, 72), "test_sft": (72, 80), "train_gen": (80, 98), "test_gen": (98, 100)}

README = """
# ultrachat-sample

Real conversations from the `data/` folder of the `llamafactory==0.9.5` sdist (Apache-2.0;
each demo set keeps its upstream license, see LLaMA-Factory's `data/README.md`), converted by
chattune to the schema and split names of
[HuggingFaceH4/ultrachat_200k](https://huggingface.co/datasets/HuggingFaceH4/ultrachat_200k):
`prompt` (first user text), `prompt_id` (sha256 hex of `prompt`), `messages` (`content`, `role`).

| split | rows |
|---|---|
{table}
Sources: `kto_en_demo` (label true only), `dpo_en_demo` (conversation + chosen answer),
`glaive_toolcall_en_demo` (tools → system message, `<functioncall>` assistant turns,
`FUNCTION RESPONSE:` user turns), `alpaca_en_demo` (instruction + input → user, output →
assistant). Rows that break the chat rules are dropped, duplicate prompt_ids keep the first
row; each row lands in one split by its prompt_id hash.
"""


def convert_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every usable source row as an ultrachat row, in source order, deduplicated by prompt_id."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for filename, converter in SOURCES:
        for raw in read_json_list(data_dir / filename):
            messages = converter(raw) if isinstance(raw, dict) else None
            if messages is None or validate_conversation(messages):
                continue
            row = convert.to_row(messages)
            if row["prompt_id"] not in seen:
                seen.add(row["prompt_id"])
                rows.append(row)
    return rows


def split_of(prompt_id: str) -> str:
    """The split a row belongs to, from its prompt_id alone (stable, deterministic).

    >>> split_of(convert.prompt_id("hi"))
    'train_sft'
    """
    bucket = int(prompt_id[:8], 16) % 100
    return next(name for name, (lo, hi) in SPLITS.items() if lo <= bucket < hi)


def build_ultrachat_sample(llamafactory_data_dir: Path, out_dir: Path) -> dict[str, int]:
    """Convert LLaMA-Factory's demo data into a hub-layout folder; return rows per split.

    Deterministic: the same input gives the same rows, order and split of every row.

    >>> source = Path("llamafactory-0.9.5/data")
    >>> build_ultrachat_sample(source, Path("ultrachat-sample"))  # doctest: +SKIP
    {'train_sft': 1208, 'test_sft': 130, 'train_gen': 261, 'test_gen': 26}
    """
    splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for row in sorted(convert_rows(Path(llamafactory_data_dir)), key=lambda r: r["prompt_id"]):
        splits[split_of(row["prompt_id"])].append(row)
    counts = {name: len(rows) for name, rows in splits.items()}
    if not all(counts.values()):  # `datasets` cannot load a split without rows
        raise AssetError(
            f"{llamafactory_data_dir}: too few usable rows to fill every split ({counts})",
            "run `chattune assets fetch --force` to fetch the llamafactory sdist again",
        )
    table = "".join(f"| {name} | {n} |\n" for name, n in counts.items())
    write_hub_folder(splits, Path(out_dir), README.format(table=table))
    return counts


def read_json_list(path: Path) -> list[Any]:
    if not path.is_file():
        raise AssetError(
            f"{path} is missing from the llamafactory data folder",
            "run `chattune assets fetch --force` to fetch the llamafactory sdist again",
        )
    refetch = "run `chattune assets fetch --force`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AssetError(f"{path} is not valid JSON ({exc})", refetch) from exc
    if not isinstance(data, list):
        raise AssetError(f"{path}: expected a JSON list of rows", refetch)
    return data
