"""Compute targets: named places a job runs. ``local`` (this machine) is built in; a ``ray``
target hands the job's worker process to a Ray cluster through the Ray Jobs API.

>>> client.compute.create("gpu-cluster", type="ray", address="http://head:8265")
>>> client.jobs.create({"model": ..., "compute": "gpu-cluster", ...})
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from chattune.errors import NotFoundError, ValidationError
from chattune.store.compute import TargetRecord

LOCAL = TargetRecord(name="local", type="local")
TYPES = ("local", "ray")
STOP_TIMEOUT_S = 60  # `jobs cancel`: SIGTERM, then this long to finish the step, then SIGKILL
_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9_]{0,62}")  # fullmatch: `$` would let "x\n" in


def new_target(name: str, type: str, address: str | None) -> TargetRecord:
    """A checked target record (name, type, address); nothing is contacted yet."""
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"compute target name {name!r} is invalid",
            "use a letter, then letters, digits, '-' or '_' (at most 63)",
        )
    if name == LOCAL.name:
        raise ValidationError("compute target 'local' is built in", "pick another name")
    if type not in TYPES:
        raise ValidationError(f"compute type {type!r} is not known", f"use one of {TYPES}")
    if type == "ray" and not address:
        raise ValidationError(
            f"compute target {name}: a ray target needs --address",
            "give the Ray dashboard (Jobs API) address, e.g. http://127.0.0.1:8265",
        )
    return TargetRecord(name=name, type=type, address=address)


def unknown(name: str, known: list[str]) -> NotFoundError:
    example = name if _NAME.fullmatch(name) else "NAME"  # never echo a newline into the fix
    return NotFoundError(
        f"compute target {name!r} is not defined (known: {', '.join(known)})",
        f"create it with `chattune compute create {example} --type ray --address URL`, "
        "or use compute: local",
    )


def worker_command(job: str, workspace: Path, resume: bool) -> list[str]:
    """The job's worker entrypoint, the same on every target."""
    cmd = [sys.executable, "-m", "chattune.jobs.worker", job, "--workspace", str(workspace)]
    return cmd + (["--resume"] if resume else [])


def start_local(job: str, workspace: Path, resume: bool, log: Path) -> int:
    """Start the worker as a local process in its own session; its pid."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            worker_command(job, workspace, resume),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the terminal and the CLI
        )
    return proc.pid


def submit_ray(target: TargetRecord, job: str, workspace: Path, resume: bool, attempt: int) -> str:
    """Submit the worker to the Ray cluster; the submission id.

    The head here shares the workspace's filesystem (a local head, or shared storage on a
    cluster), so the job writes its state and outputs straight into the workspace.
    """
    from chattune.compute import ray_jobs

    submission = f"chattune-{job}-{attempt}"
    assert target.address is not None
    ray_jobs.submit(
        target.address,
        worker_command(job, workspace.resolve(), resume),
        submission_id=submission,
        env={"CHATTUNE_COMPUTE": target.name, **_passed_env()},
        stop_timeout_s=STOP_TIMEOUT_S,
    )
    return submission


def check_visible(target: TargetRecord, paths: dict[str, str]) -> None:
    """Refuse, before anything is submitted, paths (``{what: absolute path}``) the Ray
    cluster cannot see: the worker opens them on the cluster, not here."""
    from chattune.compute import ray_jobs

    assert target.address is not None
    missing = set(
        ray_jobs.missing_paths(target.address, list(paths.values()), python=sys.executable)
    )
    unseen = [f"{what} {path}" for what, path in paths.items() if path in missing]
    if unseen:
        raise ValidationError(
            f"compute target {target.name} ({target.address}) cannot see " + ", ".join(unseen),
            "put them on storage the Ray nodes mount at the same path (e.g. a shared "
            "filesystem), or run the job with compute: local",
        )


def _passed_env() -> dict[str, str]:
    """What the worker needs from the submitter's environment (caches, hub settings)."""
    import os

    keep = ("CHATTUNE_CACHE", "CHATTUNE_ULTRACHAT_SAMPLE", "HF_HOME", "HF_HUB_OFFLINE", "HF_TOKEN")
    return {k: os.environ[k] for k in keep if k in os.environ}
