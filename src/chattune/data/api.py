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
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from chattune.data.download import SplitInfo
from chattune.errors import NotFoundError
from chattune.workspace import Workspace

SAMPLE = "ultrachat-sample"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
SAMPLE_ENV = "CHATTUNE_ULTRACHAT_SAMPLE"


def _unresolved(name: str) -> Path:
    raise NotFoundError(f"{name!r} cannot be resolved here", "use a local folder")


@dataclass(frozen=True)
class Resolvers:
    """What data needs from the model catalog and offline assets, injected by the client
    (data sits below the catalog in the layers)."""

    dataset_names: tuple[str, ...] = ()
    """Local dataset names ``download`` accepts as SOURCE (``ultrachat-sample``)."""
    dataset_folder: Callable[[str], Path] = _unresolved
    """The fetched folder of such a dataset; raises with the fetch hint when missing."""
    model_folder: Callable[[str], Path] = _unresolved
    """A model reference (catalog name, ``hf://``) as a local folder with its tokenizer."""


class DataAPI:
    """Chat data operations of one workspace."""

    def __init__(self, workspace: Workspace, resolvers: Resolvers | None = None) -> None:
        self.workspace = workspace
        self.resolvers = resolvers or Resolvers()

    def local_sources(self) -> dict[str, Path]:
        """Local dataset names ``download`` accepts, with their folders.

        ``$CHATTUNE_ULTRACHAT_SAMPLE`` overrides the fetched offline copy.
        """
        if os.environ.get(SAMPLE_ENV):
            return {SAMPLE: Path(os.environ[SAMPLE_ENV]).expanduser()}
        return {n: self.resolvers.dataset_folder(n) for n in self.resolvers.dataset_names}

    def download(
        self,
        source: str,
        split_pc: float,
        out: str | Path,
        seed: int = 42,
        sample: str = "random",
    ) -> dict[str, SplitInfo]:
        """``split_pc`` percent of each split of SOURCE as four JSONL files in ``out``.

        ``sample``: ``random`` (seeded shuffle, the default) or ``first`` (head of each
        split); ``out/.manifest.json`` records which, with each file's sha256.

        Example: ``client.data.download("HuggingFaceH4/ultrachat_200k", 5, "data/")``
        """
        from chattune.data.download import download

        names = {SAMPLE} if os.environ.get(SAMPLE_ENV) else set(self.resolvers.dataset_names)
        # Folders only for the source asked for (resolving one that is not fetched raises);
        # for any other SOURCE the names alone serve the "known sources" error message.
        sources = self.local_sources() if source in names else dict.fromkeys(names, Path())
        return download(
            source, split_pc, Path(out), seed=seed, local_sources=sources, sample=sample
        )

    def validate(
        self,
        path: str | Path,
        split: str | None = None,
        *,
        fmt: str | None = None,
        role_map: dict[str, str] | None = None,
        drop_invalid: str | Path | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Check every row against the chat rules, streaming; the full report.

        The report has every problem (``problems``: file, line, field, message, kind,
        severity) and counts by kind (``summary``). With ``check`` (the default) a file
        with errors raises one :class:`DataValidationError` naming all of them instead;
        ``check=False`` returns the report with ``ok: False``. ``drop_invalid`` writes the
        valid rows there and the rejected ones to ``<drop_invalid>.rejects.jsonl``.

        Example: ``client.data.validate("data/train_sft.jsonl")`` →
        ``{"path": "data/train_sft.jsonl", "ok": True, "rows": 60, "format": "messages", ...}``
        """
        from chattune.data.report import validate_file
        from chattune.data.schema import DataValidationError

        report = validate_file(path, split, fmt=fmt, role_map=role_map, drop_invalid=drop_invalid)
        if check and not report["ok"]:
            errors = [p["text"] for p in report["problems"] if p["severity"] == "error"]
            raise DataValidationError(errors)
        return report

    def convert(
        self,
        src: str | Path,
        out: str | Path,
        *,
        fmt: str | None = None,
        role_map: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Write a ShareGPT / Alpaca / prompt-completion / messages file as ``messages`` JSONL.

        Example: ``client.data.convert("alpaca.json", "train.jsonl")`` →
        ``{"path": "train.jsonl", "rows": 52, "format": "alpaca"}``
        """
        from chattune.data.report import convert_file

        return convert_file(src, out, fmt=fmt, role_map=role_map)

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
        from chattune.data.readers import DataReader, iter_conversations
        from chattune.data.stats import describe

        reader = DataReader(path, split)
        first = [r.conversation for r in islice(reader, max(n, 0))]
        tokenizer = self._tokenizer(model_dir) if model_dir is not None else None
        rows = iter_conversations(path, split)
        stats = describe(rows, tokenizer, Path(plot) if plot is not None else None)
        return {
            "path": str(path),
            "format": reader.format,
            "stats": stats,
            "conversations": [c.messages for c in first if c is not None],
        }

    def files(self, root: str | Path = ".", depth: int = 3) -> list[str]:
        """Chat data files under ``root`` (jsonl, json, parquet, csv; hidden folders, virtual
        environments and the workspace's own folders skipped), as paths relative to ``root``.

        Example: ``client.data.files()`` → ``["ultrachat_200k_dataset/train_sft.jsonl", ...]``
        """
        base = Path(root)
        skip = {"node_modules", "site-packages", "mlartifacts", "jobs", "models", "endpoints"}
        found: list[str] = []

        def walk(folder: Path, level: int) -> None:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                return
            for entry in entries:
                if entry.name.startswith(".") or entry.name in skip:
                    continue
                if entry.is_dir() and level < depth and not (entry / "pyvenv.cfg").exists():
                    walk(entry, level + 1)
                elif entry.suffix in DATA_SUFFIXES and entry.is_file():
                    found.append(entry.relative_to(base).as_posix())

        walk(base, 1)
        return found

    def token_lengths(
        self, path: str | Path, model: str | Path, split: str | None = None, bins: int = 30
    ) -> dict[str, Any]:
        """Token length of every conversation of ``path`` (the model's chat template) as a
        histogram: ``{"edges": [...bins + 1], "counts": [...bins], "max": N, "rows": R}``.

        Example: ``client.data.token_lengths("train.jsonl", "tiny-random-phi3")["max"]``
        """
        from chattune.data.readers import iter_conversations
        from chattune.data.stats import token_lengths

        tokenizer = self._tokenizer(model)
        lengths: list[int] = []
        batch: list[Any] = []
        for row in iter_conversations(path, split):
            batch.append(row.messages)
            if len(batch) == 64:
                lengths += token_lengths(batch, tokenizer)
                batch = []
        lengths += token_lengths(batch, tokenizer)
        top = max(lengths, default=0)
        width = max(1, -(-top // max(bins, 1)))  # ceil: every length falls in a bin
        counts = [0] * max(1, -(-(top + 1) // width))
        for n in lengths:
            counts[n // width] += 1
        return {
            "rows": len(lengths),
            "edges": [i * width for i in range(len(counts) + 1)],
            "counts": counts,
            "max": top,
            "model_max_length": getattr(tokenizer, "model_max_length", None),
        }

    def _tokenizer(self, model: str | Path) -> Any:
        """The tokenizer of a model folder (tokenizer-only is enough), catalog name or hf://."""
        from transformers import AutoTokenizer

        folder = Path(model).expanduser()
        if not folder.is_dir():
            folder = self.resolvers.model_folder(str(model))
        return AutoTokenizer.from_pretrained(folder)
