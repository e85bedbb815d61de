"""The job process: ``python -m chattune.jobs.worker --workspace W NAME [--resume]``.

Started in its own session by ``jobs create``, so closing the terminal does not stop it.
SIGTERM (``jobs cancel``) stops it between steps and marks the job canceled; the handler is
installed before anything heavy is imported, so a cancel during start-up counts too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chattune.jobs.cancel import Canceled, on_sigterm_cancel
from chattune.jobs.queue import LOCAL, wait_for_turn

if TYPE_CHECKING:
    from chattune.store.jobs import JobStore
    from chattune.workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    on_sigterm_cancel()
    parser = argparse.ArgumentParser(prog="chattune-job")
    parser.add_argument("name")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    from chattune.jobs.runner import run_job
    from chattune.store import workspace_store
    from chattune.workspace import Workspace

    ws = Workspace(Path(args.workspace))
    jobs = workspace_store(ws).jobs
    try:
        if jobs.get(args.name).compute == LOCAL:
            wait_in_queue(ws, jobs, args.name)
        status = run_job(ws, args.name, resuming=args.resume)
    except Canceled:  # asked to stop before or between stages
        jobs.update(args.name, status="canceled", finished_at=time.time(), error=None)
        for stage in jobs.get(args.name).stages:
            if stage.status in ("queued", "running"):
                jobs.update_stage(args.name, stage.name, status="canceled", note="job canceled")
        return 1
    except BaseException as exc:  # outside any stage: still never leave the job "running"
        jobs.update(
            args.name,
            status="failed",
            finished_at=time.time(),
            error=f"job process: {type(exc).__name__}: {exc}",
        )
        raise
    return 0 if status == "completed" else 1


def wait_in_queue(ws: Workspace, jobs: JobStore, name: str) -> None:
    """Local jobs run one at a time in submission order; say in the log what this one waits for."""
    from chattune.jobs.runner import job_logger

    log = job_logger(name, ws.job_dir(name) / "job.log")
    wait_for_turn(
        jobs,
        name,
        lambda ahead: log.info("queued behind %s (local runs one job at a time)", ", ".join(ahead)),
    )


if __name__ == "__main__":
    sys.exit(main())
