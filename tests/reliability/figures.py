"""Where the reliability suite records its figures, for ``benchmarks/reliability_table.py``.

Each slow test writes one JSON file named after its row into ``$CHATTUNE_RELIABILITY_OUT``
(default ``.chattune-reliability/`` in the repository, ignored by git): the figures it
measured, the command that reproduces it, and when.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def out_dir() -> Path:
    """The folder the figures go to (created on demand)."""
    folder = Path(os.environ.get("CHATTUNE_RELIABILITY_OUT") or REPO / ".chattune-reliability")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record(row: str, test: str, figures: dict[str, object]) -> Path:
    """Write ``row``'s figures (atomically: a reader never sees half a file)."""
    command = f".venv/bin/python -m pytest -q -m '' tests/reliability/{test}"
    body = {
        "row": row,
        "command": command,
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "figures": figures,
    }
    path = out_dir() / f"{row}.json"
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(body, indent=2))
    os.replace(temp, path)
    return path
