"""The job process: ``python -m chattune.jobs.worker --workspace W NAME [--resume]``.

Started in its own session by ``jobs create``, so closing the terminal does not stop it.
SIGTERM (``jobs cancel``) stops it between steps and marks the job canceled.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from chattune.jobs.runner import Canceled, run_job
from chattune.store import workspace_store
from chattune.workspace import Workspace


def _cancel(_signum: int, _frame: FrameType | None) -> None:
    raise Canceled()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chattune-job")
    parser.add_argument("name")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _cancel)
    ws = Workspace(Path(args.workspace))
    try:
        status = run_job(ws, args.name, resuming=args.resume)
    except BaseException as exc:  # outside any stage: still never leave the job "running"
        workspace_store(ws).jobs.update(
            args.name,
            status="failed",
            finished_at=time.time(),
            error=f"job process: {type(exc).__name__}: {exc}",
        )
        raise
    return 0 if status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
