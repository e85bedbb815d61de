"""What a job leaves in its MLflow run as artifacts, so the run alone tells the whole story:
the effective spec, the job log and each stage's part of it, the loss curve and the
evaluation report.

Layout in the run: ``spec.yaml``, ``logs/job.log``, ``logs/process.log``,
``logs/stages/<stage>.log``, ``plots/loss.png``, ``evaluation/report.{json,md}``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from chattune.workspace import Workspace

# job.log lines are "HH:MM:SS LEVEL message"; the runner starts and ends each stage with a
# "stage NAME: ..." line (running / completed in / failed / reused ... (cache hit)).
_STAGE = re.compile(r"^\S+ [A-Z]+ stage (\w+)[: ]")
_ENTRY = re.compile(r"^\d\d:\d\d:\d\d ")
_STAGE_END = re.compile(r"stage \w+(: completed in | failed: |: .*\(cache hit\))")


def stage_logs(text: str) -> dict[str, str]:
    """Each stage's lines of a job log (tracebacks included), in first-run order."""
    logs: dict[str, list[str]] = {}
    current: str | None = None
    ended = False  # the stage's last line came; lines that continue it (a traceback) follow
    for line in text.splitlines():
        found = _STAGE.match(line)
        if found:
            current, ended = found.group(1), bool(_STAGE_END.search(line))
        elif ended and _ENTRY.match(line):
            current, ended = None, False
        if current is not None:
            logs.setdefault(current, []).append(line)
    return {stage: "\n".join(lines) + "\n" for stage, lines in logs.items()}


def log_job_artifacts(client: Any, run_id: str, ws: Workspace, job: str) -> list[str]:
    """Upload the job's files to its run; the artifact paths written."""
    from chattune.jobs.metrics import read_metrics

    job_dir = ws.job_dir(job)
    files: list[tuple[Path, str]] = [
        (job_dir / "spec.yaml", ""),
        (job_dir / "job.log", "logs"),
        (job_dir / "process.log", "logs"),
        (job_dir / "evaluate" / "report.json", "evaluation"),
        (job_dir / "evaluate" / "report.md", "evaluation"),
    ]
    plot = job_dir / "loss.png"
    read_metrics(ws, run_id, plot=plot)  # renders the curve from the run's own history
    files.append((plot, "plots"))
    written = []
    for path, folder in files:
        if path.exists():
            client.log_artifact(run_id, str(path), folder or None)
            written.append(f"{folder}/{path.name}" if folder else path.name)
    if (job_dir / "job.log").exists():
        with tempfile.TemporaryDirectory(prefix="chattune-logs-") as tmp:
            for stage, text in stage_logs((job_dir / "job.log").read_text()).items():
                (Path(tmp) / f"{stage}.log").write_text(text)
                written.append(f"logs/stages/{stage}.log")
            client.log_artifacts(run_id, tmp, "logs/stages")
    return written
