"""Build ``preference-sample``: LLaMA-Factory's DPO demo pairs in ultrafeedback_binarized's
layout (HuggingFaceH4/ultrafeedback_binarized: ``train_prefs`` / ``test_prefs`` splits, each
row ``prompt``, ``prompt_id``, ``chosen`` and ``rejected`` as whole message lists, and
``messages`` = ``chosen``), so ``data download preference-sample --split-pc 5`` and a
``method: dpo`` job read it as they would read the hub dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chattune.data import convert
from chattune.data.hub_layout import write_hub_folder
from chattune.data.preference import to_pair
from chattune.data.sample import read_json_list
from chattune.errors import AssetError

SOURCE = "dpo_en_demo.json"
TEST_PERCENT = 10
"""Rows whose prompt_id hash falls in the lowest 10 buckets of 100 go to ``test_prefs``."""

README = """
# preference-sample

Real preference pairs from `data/dpo_en_demo.json` of the `llamafactory==0.9.5` sdist
(Apache-2.0; the demo set keeps its upstream license, see LLaMA-Factory's `data/README.md`),
converted by chattune to the schema and split names of
[HuggingFaceH4/ultrafeedback_binarized](https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized):
`prompt` (last user text), `prompt_id` (sha256 hex of the whole prompt conversation),
`chosen` and `rejected` (the conversation and its answer, `content`/`role`), `messages`
(= `chosen`).

| split | rows |
|---|---|
{table}
Pairs that break the preference rules are dropped; each row lands in one split by its
prompt_id hash.
"""


def preference_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every valid pair of the demo file as an ultrafeedback_binarized row, deduplicated."""
    rows, seen = [], set()
    for raw in read_json_list(Path(data_dir) / SOURCE):
        pair, _ = to_pair(raw, "sharegpt_dpo")
        if pair is None:
            continue
        key = convert.prompt_id("\n".join(m["content"] for m in pair.prompt))
        if key in seen:
            continue
        seen.add(key)
        chosen, rejected = pair.conversation("chosen"), pair.conversation("rejected")
        rows.append(
            {
                "prompt": pair.prompt[-1]["content"],
                "prompt_id": key,
                "chosen": chosen,
                "rejected": rejected,
                "messages": chosen,
            }
        )
    return rows


def build_preference_sample(llamafactory_data_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the hub-layout folder; rows per split. Deterministic.

    >>> build_preference_sample(Path("llamafactory-0.9.5/data"), Path("out"))  # doctest: +SKIP
    {'train_prefs': 270, 'test_prefs': 30}
    """
    splits: dict[str, list[dict[str, Any]]] = {"train_prefs": [], "test_prefs": []}
    for row in sorted(preference_rows(llamafactory_data_dir), key=lambda r: r["prompt_id"]):
        test = int(row["prompt_id"][:8], 16) % 100 < TEST_PERCENT
        splits["test_prefs" if test else "train_prefs"].append(row)
    counts = {name: len(rows) for name, rows in splits.items()}
    if not all(counts.values()):
        raise AssetError(
            f"{llamafactory_data_dir}: too few usable pairs to fill both splits ({counts})",
            "run `chattune assets fetch --force` to fetch the llamafactory sdist again",
        )
    table = "".join(f"| {name} | {n} |\n" for name, n in counts.items())
    write_hub_folder(splits, Path(out_dir), README.format(table=table))
    return counts
