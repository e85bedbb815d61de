"""``chattune data download``: take a seeded percentage of each split of a chat dataset.

SOURCE is one of, tried in this order:

1. a local source name (``ultrachat-sample``, the offline copy ``chattune assets fetch`` makes);
2. a local dataset folder in hub layout (what ``datasets.load_dataset(folder)`` reads);
3. a hub id ``org/name`` (``datasets.load_dataset(source)``, the real hub code path).

Output: ``train_sft.jsonl``, ``test_sft.jsonl``, ``train_gen.jsonl``, ``test_gen.jsonl`` in
OUT, rows unchanged (preference data with a ``train_prefs`` split, like
ultrafeedback_binarized and ``preference-sample``: ``train_prefs.jsonl`` and
``test_prefs.jsonl``). A source with other split names is mapped per output split, first
present wins: ``train_sft`` ← train_sft, train_gen, train; ``train_gen`` ← train_gen,
train_sft, train; ``test_*`` likewise from test_*, test, validation, valid, dev. A source with
no test split gets one carved from train (10%, seeded), so test rows never repeat train rows.
When one source split feeds both sft and gen, both files hold the same sampled rows (the gen
files are read for their prompts).

Sampling: ``random`` (the default) takes a seeded shuffle of each split, so a small percent
still spans the whole split (a split's head can be ordered by source or topic); ``first``
takes the head of each split, the rows the reference script's ``split[:N%]`` takes, for
comparing with it (a carved test split is then the tail of train). OUT/.manifest.json records
the source, percent, sampling, seed and each file's rows and sha256 (what ``sha256sum``
prints).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chattune.errors import NotFoundError, RuntimeFailure, ValidationError

OUT_SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")
TEST_ALIASES = ("test", "validation", "valid", "dev")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HELD_OUT = 0.1
SAMPLES = ("random", "first")
MANIFEST = ".manifest.json"


@dataclass(frozen=True)
class SplitInfo:
    """One written split: how many rows, where, and which source split they came from."""

    split: str
    rows: int
    path: Path
    source_split: str
    source_rows: int


def download(
    source: str,
    split_pc: float,
    out: Path,
    seed: int = 42,
    local_sources: Mapping[str, Path] | None = None,
    sample: str = "random",
) -> dict[str, SplitInfo]:
    """Write ``split_pc`` percent (at least one row) of each split of ``source`` into ``out``.

    ``sample="random"`` is a seeded shuffle (the same source, percent and seed give the same
    rows); ``sample="first"`` the head of each split.

    Example::

        info = download("ultrachat-sample", 5, Path("data"), local_sources=local_sources())
        info["train_sft"].rows  # 60 of 1208
    """
    if not 0 < split_pc <= 100:
        raise ValidationError(
            f"--split-pc {split_pc}: expected a percent in (0, 100]", "e.g. --split-pc 5"
        )
    if sample not in SAMPLES:
        raise ValidationError(f"--sample {sample}: unknown", "use --sample random or first")
    dataset = load_source(source, local_sources or {})
    dataset = _with_test_split(dataset, seed, sample)
    plan = plan_splits(list(dataset))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, SplitInfo] = {}
    temps: list[tuple[Path, Path]] = []
    try:
        for split, source_split in plan.items():
            full = dataset[source_split]
            count = max(1, int(len(full) * split_pc / 100)) if len(full) else 0
            rows = full.shuffle(seed=seed) if sample == "random" else full
            path = out / f"{split}.jsonl"
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            temps.append((tmp, path))
            with tmp.open("w", encoding="utf-8") as f:
                for row in rows.select(range(count)):
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            written[split] = SplitInfo(split, count, path, source_split, len(full))
        manifest = out / MANIFEST
        temps.append((manifest.with_name(f"{MANIFEST}.tmp{os.getpid()}"), manifest))
        record = _manifest(source, split_pc, sample, seed, written, [t for t, _ in temps])
        temps[-1][0].write_text(json.dumps(record, indent=2) + "\n")
        for tmp, path in temps:  # renamed only once all four are written
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return written


def _manifest(
    source: str,
    split_pc: float,
    sample: str,
    seed: int,
    written: dict[str, SplitInfo],
    temps: list[Path],
) -> dict[str, Any]:
    """What was downloaded and how; each file's sha256 is that of its (temp) bytes."""
    from chattune.data.digest import file_sha256

    return {
        "source": source,
        "split_pc": split_pc,
        "sample": sample,
        "seed": seed if sample == "random" else None,
        "splits": {
            split: {
                "file": info.path.name,
                "rows": info.rows,
                "source_split": info.source_split,
                "source_rows": info.source_rows,
                "sha256": file_sha256(tmp),
            }
            for (split, info), tmp in zip(written.items(), temps, strict=False)
        },
    }


def plan_splits(available: list[str]) -> dict[str, str]:
    """Which source split feeds each output split (see the module doc).

    >>> plan_splits(["train", "test"])
    {'train_sft': 'train', 'test_sft': 'test', 'train_gen': 'train', 'test_gen': 'test'}

    Preference data (ultrafeedback_binarized's ``train_prefs``) keeps its own names:

    >>> plan_splits(["train_prefs", "test_prefs", "train_gen"])
    {'train_prefs': 'train_prefs', 'test_prefs': 'test_prefs'}
    """
    if "train_prefs" in available:
        test = next((c for c in ("test_prefs", *TEST_ALIASES) if c in available), None)
        if test is None:
            raise ValidationError(
                "preference data with train_prefs needs a test_prefs split",
                "add a test_prefs split to the source",
            )
        return {"train_prefs": "train_prefs", "test_prefs": test}
    plan: dict[str, str] = {}
    for split in OUT_SPLITS:
        kind, part = split.split("_")
        other = "gen" if part == "sft" else "sft"
        aliases = TEST_ALIASES if kind == "test" else ("train",)
        candidates = (split, f"{kind}_{other}", *aliases)
        found = next((c for c in candidates if c in available), None)
        if found is None:
            raise ValidationError(
                f"cannot map source splits {', '.join(available)} to {split}",
                "use a dataset with train_sft/test_sft (ultrachat) or train/test splits",
            )
        plan[split] = found
    return plan


def load_source(source: str, local_sources: Mapping[str, Path]) -> Any:
    """The ``DatasetDict`` for a local source name, a local dataset folder or a hub id."""
    if source in local_sources:
        folder = Path(local_sources[source])
        if not folder.is_dir():
            raise NotFoundError(
                f"local source {source!r} is not available (looked in {folder})",
                "run `chattune assets fetch`",
            )
        return _load_folder(folder)
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_folder(path)
    known = ", ".join(sorted(local_sources)) or "none"
    if path.is_file():
        raise ValidationError(
            f"{source} is a file; download reads a dataset (local source, folder or hub id)",
            "use the file directly: `chattune data validate FILE`, or `data.train` in a job spec",
        )
    if not HUB_ID.fullmatch(source):
        raise NotFoundError(
            f"unknown data source {source!r}: not a local source ({known}), folder or hub id",
            f"use one of: {known}, a dataset folder, or a hub id like HuggingFaceH4/ultrachat_200k",
        )
    return _load_hub(source, known)


def _load_folder(folder: Path) -> Any:
    import datasets

    try:
        return datasets.load_dataset(str(folder))
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as exc:
        raise ValidationError(
            f"{folder} is not a readable dataset folder ({_first_line(exc)})",
            "use a folder in hub layout: README.md with configs, data/<split>-*.parquet",
        ) from exc


def _load_hub(source: str, known: str) -> Any:
    import datasets
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    not_found = NotFoundError(
        f"no hub dataset, local folder or local source named {source!r}",
        f"check the id on huggingface.co, or use one of: {known}",
    )
    if not constants.HF_HUB_OFFLINE:  # probe first: fails in a second instead of retrying
        try:
            HfApi().dataset_info(source, timeout=15)
        except GatedRepoError as exc:
            raise ValidationError(
                f"hub dataset {source!r} is gated",
                "accept its terms on huggingface.co, then `hf auth login`",
            ) from exc
        except RepositoryNotFoundError as exc:
            raise not_found from exc
        except Exception as exc:  # DNS, proxy, TLS, timeouts: all mean "cannot reach it"
            raise _unreachable(source, exc, known) from exc
    try:
        return datasets.load_dataset(source)
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise not_found from exc
    except (ConnectionError, OSError) as exc:
        raise _unreachable(source, exc, known) from exc


def _unreachable(source: str, exc: BaseException, known: str) -> RuntimeFailure:
    return RuntimeFailure(
        f"cannot reach the Hugging Face hub for {source!r} "
        f"({type(exc).__name__}: {_first_line(exc)})",
        f"offline? use a local source ({known}) or a local dataset folder; with a cached copy "
        "set HF_HUB_OFFLINE=1",
    )


def _with_test_split(dataset: Any, seed: int, sample: str = "random") -> Any:
    names = list(dataset)
    if any(n.startswith("test") or n in TEST_ALIASES for n in names):
        return dataset
    train = next((n for n in ("train", "train_sft", "train_gen") if n in names), None)
    if train is None or len(dataset[train]) < 2:
        return dataset  # plan_splits says what is missing
    rows = dataset[train]
    if sample == "first":  # the head stays train, the tail is the test split
        cut = len(rows) - max(1, int(len(rows) * HELD_OUT))
        parts = {"train": rows.select(range(cut)), "test": rows.select(range(cut, len(rows)))}
    else:
        parts = rows.train_test_split(test_size=HELD_OUT, seed=seed)
    return {**{n: dataset[n] for n in names}, train: parts["train"], "test": parts["test"]}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
