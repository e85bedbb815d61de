"""``client.data``: download, validate and show chat data.

Example::

    from chattune import Client

    data = Client().data
    data.download("ultrachat-sample", split_pc=5, out="data/")
    data.validate("data/train_sft.jsonl")["rows"]  # 60
    data.show("data/train_sft.jsonl", n=2, model_dir="SmolLM2-135M-Instruct")["stats"]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chattune.data.download import SplitInfo
from chattune.workspace import Workspace

SAMPLE = "ultrachat-sample"
SAMPLE_ENV = "CHATTUNE_ULTRACHAT_SAMPLE"


def local_sources() -> dict[str, Path]:
    """Local dataset names ``download`` accepts as SOURCE, with their folders.

    ``$CHATTUNE_ULTRACHAT_SAMPLE`` overrides the fetched offline copy. A name whose folder
    is not fetched yet is still listed (``download`` then says to run ``chattune assets fetch``).
    """
    if os.environ.get(SAMPLE_ENV):
        return {SAMPLE: Path(os.environ[SAMPLE_ENV]).expanduser()}
    try:
        from chattune.catalog import assets
    except ImportError:
        return {}
    return {name: assets.asset_path(name) for name in assets.DATASETS}


class DataAPI:
    """Chat data operations of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def download(
        self, source: str, split_pc: float, out: str | Path, seed: int = 42
    ) -> dict[str, SplitInfo]:
        """``split_pc`` percent of each split of SOURCE as four JSONL files in ``out``.

        Example: ``client.data.download("HuggingFaceH4/ultrachat_200k", 5, "data/")``
        """
        from chattune.data.download import download

        sources = local_sources()
        if source in sources and not os.environ.get(SAMPLE_ENV):
            _require_fetched(source)
        return download(source, split_pc, Path(out), seed=seed, local_sources=sources)

    def validate(self, path: str | Path, split: str | None = None) -> dict[str, Any]:
        """Check every row against the chat rules; a report, or one ValidationError naming all.

        Example: ``client.data.validate("data/train_sft.jsonl")`` →
        ``{"path": "data/train_sft.jsonl", "ok": True, "rows": 60, ...}``
        """
        from chattune.data.readers import load_conversations

        rows = load_conversations(path, split)
        messages = [m for c in rows for m in c.messages]
        return {
            "path": str(path),
            "ok": True,
            "rows": len(rows),
            "messages": len(messages),
            "assistant_turns": sum(m["role"] == "assistant" for m in messages),
            "rows_with_system": sum(c.messages[0]["role"] == "system" for c in rows),
        }

    def show(
        self,
        path: str | Path,
        n: int = 3,
        model_dir: str | Path | None = None,
        split: str | None = None,
        plot: str | Path | None = None,
    ) -> dict[str, Any]:
        """Stats of a data file (token lengths with a model's tokenizer) + its first ``n`` rows.

        Example: ``client.data.show("train_sft.jsonl", n=2, model_dir="SmolLM2-135M-Instruct")``
        """
        from chattune.data.readers import load_conversations
        from chattune.data.stats import describe

        rows = load_conversations(path, split)
        tokenizer = load_tokenizer(model_dir) if model_dir is not None else None
        stats = describe(rows, tokenizer, Path(plot) if plot is not None else None)
        return {
            "path": str(path),
            "stats": stats,
            "conversations": [c.messages for c in rows[: max(n, 0)]],
        }


def _require_fetched(name: str) -> None:
    """Raise the asset fetcher's own "not fetched, run `chattune assets fetch`" error."""
    try:
        from chattune.catalog import assets
    except ImportError:
        return
    assets.require(name)


def load_tokenizer(model: str | Path) -> Any:
    """The tokenizer of a catalog model, a model folder, or ``hf://org/id``."""
    from transformers import AutoTokenizer

    from chattune.catalog import sources

    folder = Path(model).expanduser()
    if not folder.is_dir():  # a tokenizer-only folder is enough here, unlike for training
        folder = sources.materialize(sources.parse(str(model)))
    return AutoTokenizer.from_pretrained(folder)
