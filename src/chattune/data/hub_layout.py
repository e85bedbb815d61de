"""Local dataset folders in Hugging Face hub layout: write them, find their split files.

The layout is the one ``datasets.load_dataset(folder)`` reads, the same as a hub repo::

    folder/
      README.md                            YAML front matter: configs → data_files per split
      data/train_sft-00000-of-00001.parquet
      data/test_sft-00000-of-00001.parquet
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chattune.errors import ConflictError, ValidationError

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


MESSAGE_COLUMNS = ("chosen", "rejected", "messages")
"""Columns of ``{content, role}`` lists written when the rows have them (in this order)."""


def write_hub_folder(
    splits: Mapping[str, list[dict[str, Any]]], out_dir: Path, readme_body: str = ""
) -> None:
    """Write ultrachat-schema rows as one parquet file per split + README, atomically.

    The folder is built next to ``out_dir`` and renamed into place; an existing ``out_dir``
    is replaced only when it is empty or an earlier hub-layout folder.

    Example::

        row = to_row([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
        write_hub_folder({"train_sft": [row], "test_sft": [row]}, Path("my-dataset"))
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
    first = next((rows[0] for rows in splits.values() if rows), {})
    lists = [c for c in MESSAGE_COLUMNS if c in first]  # preference rows: chosen, rejected
    schema = pa.schema(
        [("prompt", pa.string()), ("prompt_id", pa.string()), *((c, turns) for c in lists)]
    )
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; a dataset folder is an ordinary folder
    try:
        (tmp / "data").mkdir()
        for split, rows in splits.items():
            table = pa.Table.from_pylist(
                [
                    {
                        "prompt": r["prompt"],
                        "prompt_id": r["prompt_id"],
                        **{
                            c: [{"content": m["content"], "role": m["role"]} for m in r[c]]
                            for c in lists
                        },
                    }
                    for r in rows
                ],
                schema=schema,
            )
            pq.write_table(table, tmp / "data" / f"{split}-00000-of-00001.parquet")
        front = {
            "configs": [
                {
                    "config_name": "default",
                    "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits],
                }
            ]
        }
        readme = f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n{readme_body}"
        (tmp / "README.md").write_text(readme)
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def split_files(folder: Path) -> dict[str, list[Path]]:
    """The data files of each split of a hub-layout folder, in split order.

    Read from README.md's ``configs`` (the ``default`` config, else the first); without one,
    inferred from file names the way ``datasets`` does (``train_sft-00000-of-00001.parquet``,
    ``train_sft.jsonl`` → split ``train_sft``).
    """
    configs = _front_matter(folder / "README.md").get("configs")
    if isinstance(configs, list) and configs:
        config = next((c for c in configs if c.get("config_name") == "default"), configs[0])
        return _from_config(folder, config.get("data_files"))
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in DATA_SUFFIXES and not path.name.startswith("."):
            found.setdefault(path.name.removesuffix(path.suffix).split("-")[0], []).append(path)
    return found


def _from_config(folder: Path, data_files: Any) -> dict[str, list[Path]]:
    # The hub accepts a pattern, a list of patterns (one "train" split), a {split: pattern}
    # mapping, or a list of {split, path} entries.
    if isinstance(data_files, str) or (
        isinstance(data_files, list) and not any(isinstance(e, dict) for e in data_files)
    ):
        data_files = {"train": data_files}
    if isinstance(data_files, dict):
        data_files = [{"split": k, "path": v} for k, v in data_files.items()]
    if not isinstance(data_files, list):
        raise ValidationError(
            f"{folder / 'README.md'}: configs.data_files: expected a list of {{split, path}}",
            "write `data_files: [{split: train, path: data/train-*}]`",
        )
    found: dict[str, list[Path]] = {}
    for entry in data_files:
        if not isinstance(entry, dict):
            continue
        patterns = entry.get("path", [])
        patterns = [patterns] if isinstance(patterns, str) else patterns
        files = {p for pattern in patterns for p in folder.glob(str(pattern)) if p.is_file()}
        found[str(entry.get("split", "train"))] = sorted(files)
    return found


def _front_matter(readme: Path) -> dict[str, Any]:
    if not readme.is_file():
        return {}
    text = readme.read_text()
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        data = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"{readme}: front matter is not valid YAML ({exc})", "fix the YAML between the ---"
        ) from exc
    return data if isinstance(data, dict) else {}


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.is_file() or (
        out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "README.md").is_file()
    ):
        raise ConflictError(
            f"{out_dir} exists and is not an empty folder or a dataset folder",
            "choose another output folder or remove it",
        )


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
