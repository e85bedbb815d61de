"""The reference notebook's ``download-dataset.py``, backed by ``client.data.download``:

    python -m chattune.azureml.download_dataset --dataset ultrachat-sample \\
        --download_dir ultrachat_200k_dataset --dataset_split_pc 5

Writes ``train_sft.jsonl``, ``test_sft.jsonl``, ``train_gen.jsonl`` and ``test_gen.jsonl``
with the head (first ``dataset_split_pc`` percent) of each split, as the reference script's
``split[:N%]`` takes. ``ultrachat-sample`` is the offline copy; a hub id such as
``HuggingFaceH4/ultrachat_200k`` goes through the hub (``datasets.load_dataset``).
"""

from __future__ import annotations

import argparse
import sys

from chattune.client import Client
from chattune.errors import ChattuneError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chattune.azureml.download_dataset",
        description="Download the head of each split of a chat dataset as JSONL files.",
    )
    parser.add_argument(
        "--dataset", default="HuggingFaceH4/ultrachat_200k", help="hub id or local name"
    )
    parser.add_argument("--download_dir", default="data", help="folder to write the splits to")
    parser.add_argument(
        "--dataset_split_pc", type=float, default=5, help="percent of each split (0-100]"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        written = Client().data.download(
            args.dataset, args.dataset_split_pc, args.download_dir, sample="first"
        )
    except ChattuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split, info in written.items():
        print(f"{split}: {info.rows} of {info.source_rows} rows -> {info.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
