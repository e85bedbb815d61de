"""Run a job's worker on a Ray cluster through the Ray Jobs API (``JobSubmissionClient``).

A ``ray`` compute target submits the same entrypoint a local job runs
(``python -m chattune.jobs.worker NAME --workspace DIR [--resume]``) to the cluster's job
server, which is the Ray dashboard of the head node (``http://HEAD:8265``), then polls its
status, reads or follows its logs and stops it on cancel. Ray keeps the job's process; the
worker writes its state into the workspace as it does locally.

How Ray runs the entrypoint (Ray 2.60):

- as ``sh -c ENTRYPOINT`` on the head node, in a new session, with the environment of the
  Ray head plus ``env`` (``RAY_ADDRESS`` is set, no virtualenv is activated): name the
  interpreter by absolute path (``sys.executable`` when the head shares this machine) and
  pass absolute paths;
- in the head's current folder, unless ``working_dir`` is given: a local folder is zipped,
  uploaded through the dashboard and unpacked on the node (``.git``, ``.venv`` and
  ``.gitignore`` entries excluded, a few hundred MB at most); a URI (``s3://``, ``gs://``,
  ``https://...zip``) is fetched by the node. A remote head also needs chattune installed
  where the entrypoint's interpreter lives and the workspace on storage both sides mount;
- without CPU or GPU reservation unless ``num_cpus``/``num_gpus`` are given (then Ray
  places it on a node that has them and sets ``CUDA_VISIBLE_DEVICES``).

``stop`` asks Ray to send SIGTERM to the entrypoint's process group, wait
``RAY_JOB_STOP_WAIT_TIME_S`` seconds (3 by default; ``submit(stop_timeout_s=...)`` sets it
for one job) and then SIGKILL it; the job then reads ``canceled``. Jobs live as long as the
head: after a head restart (without GCS fault tolerance) their ids are unknown.

Ray is optional (``pip install 'chattune[ray]'``) and imported inside the functions only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from chattune.errors import (
    ChattuneError,
    ConflictError,
    NotFoundError,
    RuntimeFailure,
    ValidationError,
)

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

INSTALL_HINT = "pip install 'chattune[ray]'"
CONNECT_TIMEOUT_S = 5.0  # the reachability probe; the Ray SDK's own requests have none
TERMINAL = ("completed", "failed", "canceled")
# Ray JobStatus -> chattune job status.
STATES = {
    "PENDING": "queued",
    "RUNNING": "running",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "STOPPED": "canceled",
}
# Ray's clients let these variables override the address they are given.
_ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
_ENV_LOCK = threading.Lock()
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
T = TypeVar("T")


def submit(
    address: str,
    entrypoint: list[str],
    *,
    submission_id: str,
    env: dict[str, str] | None = None,
    working_dir: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    stop_timeout_s: int | None = None,
) -> str:
    """Submit ``entrypoint`` (argv, joined with shell quoting) as Ray job ``submission_id``.

    ``env`` is added to the job's environment, ``working_dir`` (local folder or URI) becomes
    its current folder, ``num_cpus``/``num_gpus`` are reserved for it, ``stop_timeout_s`` is
    how long ``stop`` waits after SIGTERM before SIGKILL. Returns the submission id.
    """
    if not entrypoint or not all(isinstance(arg, str) and arg for arg in entrypoint):
        raise ValidationError(
            f"Ray entrypoint {entrypoint!r} is empty or has empty arguments",
            "pass the command as a list of non-empty strings, e.g. [sys.executable, '-m', ...]",
        )
    _check_id(submission_id)
    runtime_env: dict[str, Any] = {}
    env_vars = {str(k): str(v) for k, v in (env or {}).items()}
    if stop_timeout_s is not None:
        if stop_timeout_s < 0:
            raise ValidationError(
                f"stop_timeout_s={stop_timeout_s} is negative", "give seconds >= 0"
            )
        env_vars["RAY_JOB_STOP_WAIT_TIME_S"] = str(int(stop_timeout_s))
    if env_vars:
        runtime_env["env_vars"] = env_vars
    if working_dir:
        runtime_env["working_dir"] = working_dir
    url = _url(address)
    client = _client(url)
    return _call(
        url,
        submission_id,
        lambda: client.submit_job(
            entrypoint=shlex.join(entrypoint),
            submission_id=submission_id,
            runtime_env=runtime_env or None,
            metadata={"submitted_by": "chattune"},
            entrypoint_num_cpus=num_cpus,
            entrypoint_num_gpus=num_gpus,
        ),
    )


def status(address: str, submission_id: str) -> str:
    """The job's chattune status: queued, running, completed, failed or canceled."""
    return info(address, submission_id)["status"]


def info(address: str, submission_id: str) -> dict[str, Any]:
    """Status plus Ray's message, the entrypoint's exit code and start/end times (epoch s)."""
    _check_id(submission_id)
    url = _url(address)
    client = _client(url)
    details = _call(url, submission_id, lambda: client.get_job_info(submission_id))
    ray_status = str(getattr(details.status, "value", details.status))
    if ray_status not in STATES:
        raise RuntimeFailure(
            f"Ray job {submission_id} on {url} has unknown status {ray_status}",
            "use a Ray version chattune supports (see the 'ray' extra of chattune)",
        )
    return {
        "status": STATES[ray_status],
        "ray_status": ray_status,
        "message": details.message,
        "exit_code": details.driver_exit_code,
        "started_at": details.start_time / 1000 if details.start_time else None,
        "finished_at": details.end_time / 1000 if details.end_time else None,
    }


def wait(address: str, submission_id: str, *, timeout_s: float, poll_s: float = 1.0) -> str:
    """Poll until the job is completed, failed or canceled and return that status."""
    deadline = time.monotonic() + timeout_s
    while (state := status(address, submission_id)) not in TERMINAL:
        if time.monotonic() >= deadline:
            raise RuntimeFailure(
                f"Ray job {submission_id} still {state} after {timeout_s:g}s",
                "wait longer, or stop it with `chattune jobs cancel`",
            )
        time.sleep(poll_s)
    return state


def logs(address: str, submission_id: str) -> str:
    """Everything the job printed so far (stdout and stderr, merged)."""
    _check_id(submission_id)
    url = _url(address)
    client = _client(url)
    return _call(url, submission_id, lambda: client.get_job_logs(submission_id))


def tail(address: str, submission_id: str, *, timeout_s: float | None = None) -> Iterator[str]:
    """Follow the job's output: yields chunks as printed, ends when the job has finished.

    Uses the Jobs API websocket on a private event loop, so call it from synchronous code
    (a thread without a running event loop). ``timeout_s`` bounds the whole stream.
    """
    _check_id(submission_id)
    url = _url(address)
    client = _client(url)
    _call(url, submission_id, lambda: client.get_job_info(submission_id))  # NotFoundError
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    loop = asyncio.new_event_loop()
    stream: Any = client.tail_job_logs(submission_id)  # an async generator (ray 2.x)
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                chunk = loop.run_until_complete(asyncio.wait_for(anext(stream), left))
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise RuntimeFailure(
                    f"Ray job {submission_id} logs still streaming after {timeout_s:g}s",
                    "follow it again, or read them at once with `logs`",
                ) from None
            except Exception as exc:
                raise _translate(exc, url, submission_id) from exc
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(stream.aclose())
        loop.close()


def stop(address: str, submission_id: str) -> bool:
    """Ask Ray to stop the job (SIGTERM, then SIGKILL); False if it had already ended."""
    _check_id(submission_id)
    url = _url(address)
    client = _client(url)
    return bool(_call(url, submission_id, lambda: client.stop_job(submission_id)))


def check(address: str, *, strict: bool = False) -> dict[str, Any]:
    """What ``chattune compute show`` prints: reachable?, Ray versions, nodes, resources.

    An unreachable head or a missing Ray gives ``reachable: False`` and ``error`` (what and
    how to fix); with ``strict=True`` (e.g. before storing a new target) it raises instead.
    A malformed address always raises ValidationError.
    """
    url = _url(address)
    result: dict[str, Any] = {
        "address": url,
        "reachable": False,
        "ray_version": None,
        "client_ray_version": None,
        "nodes": 0,
        "resources": {},
        "error": None,
    }
    try:
        _client(url)  # Ray installed, head reachable, Jobs API compatible
        import ray
        from ray.util.state import list_nodes

        result["client_ray_version"] = ray.__version__
        result["ray_version"] = _probe(url)["ray_version"]
        result["reachable"] = True
        with _explicit_address():
            nodes = list_nodes(address=url, timeout=int(CONNECT_TIMEOUT_S) + 5)
        totals: dict[str, float] = {}
        for node in nodes:
            if str(node.state) != "ALIVE":
                continue
            result["nodes"] += 1
            for name, amount in (node.resources_total or {}).items():
                if not name.startswith("node:"):  # skip per-node marker resources
                    totals[name] = totals.get(name, 0.0) + float(amount)
        result["resources"] = totals
    except ChattuneError as exc:
        if strict:
            raise
        result["error"] = str(exc)
    except Exception as exc:  # the state API: report, do not fail `compute show`
        result["error"] = f"cluster state unavailable: {_one_line(str(exc))}"
    return result


PATHS_MARK = "CHATTUNE-MISSING-PATHS "
_PATHS_SCRIPT = (
    "import json, os, sys; "
    f"print({PATHS_MARK!r} + json.dumps([p for p in sys.argv[1:] if not os.path.exists(p)]))"
)


def missing_paths(
    address: str, paths: list[str], *, python: str, timeout_s: float = 120
) -> list[str]:
    """The ``paths`` a job on the cluster cannot see, found by running a tiny Ray job
    (``python -c ...`` where the worker's entrypoint would run). RuntimeFailure when that
    job cannot run at all (no such interpreter there, no capacity)."""
    import secrets

    url = _url(address)
    submission = f"chattune-paths-{secrets.token_hex(6)}"
    submit(url, [python, "-c", _PATHS_SCRIPT, *paths], submission_id=submission)
    state = wait(url, submission, timeout_s=timeout_s, poll_s=0.5)
    output = logs(url, submission)
    for line in output.splitlines():
        if line.startswith(PATHS_MARK):
            return [str(p) for p in json.loads(line.removeprefix(PATHS_MARK))]
    last = (output.strip().splitlines() or [f"Ray job {state}, no output"])[-1]
    raise RuntimeFailure(
        f"the Ray cluster at {url} could not run {python} to check the job's paths: "
        + _one_line(last),
        "install chattune on the cluster at that same interpreter path, or use compute: local",
    )


def _url(address: str) -> str:
    """The job server's base URL (no trailing slash), or ValidationError."""
    url = (address or "").strip().rstrip("/")
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError(
            f"Ray address {address!r} is not an http(s) URL",
            "use the Ray dashboard URL of the head node, e.g. http://HEAD:8265",
        )
    return url


def _check_id(submission_id: str) -> None:
    if not isinstance(submission_id, str) or not _SUBMISSION_ID.fullmatch(submission_id):
        raise ValidationError(
            f"Ray submission id {submission_id!r} is not valid",
            "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def _unreachable(url: str, reason: str) -> RuntimeFailure:
    port = urlsplit(url).port or 8265
    return RuntimeFailure(
        f"Ray head not reachable at {url}: {reason}",
        f"start one there with `ray start --head --dashboard-host 0.0.0.0 --dashboard-port "
        f"{port}`, or set the compute target's address to its dashboard URL",
    )


def _reason(exc: BaseException) -> str:
    """A short cause for a connection failure ('Connection refused', 'timed out')."""
    text = str(exc)
    if isinstance(exc, TimeoutError) or "timed out" in text.lower():
        return f"no answer within {CONNECT_TIMEOUT_S:g}s"
    match = _ERRNO.search(text)
    return match.group(1).strip() if match else type(exc).__name__


def _probe(url: str) -> dict[str, Any]:
    """The job server's ``/api/version`` answer; fails fast when no Ray dashboard answers."""
    try:
        import requests
    except ImportError as exc:
        raise RuntimeFailure(
            "Ray's Jobs API client (ray[default]) is missing", INSTALL_HINT
        ) from exc
    try:
        reply = requests.get(f"{url}/api/version", timeout=CONNECT_TIMEOUT_S)
    except requests.Timeout as exc:
        raise _unreachable(url, f"no answer within {CONNECT_TIMEOUT_S:g}s") from exc
    except requests.RequestException as exc:
        raise _unreachable(url, _reason(exc)) from exc
    try:
        version = reply.json() if reply.status_code == 200 else None
    except ValueError:
        version = None
    if not isinstance(version, dict) or "ray_version" not in version:
        raise RuntimeFailure(
            f"{url} is not a Ray job server (HTTP {reply.status_code} on /api/version)",
            "point the address at the Ray dashboard port of the head (8265 by default)",
        )
    return version


@contextlib.contextmanager
def _explicit_address() -> Iterator[None]:
    """Hide RAY_ADDRESS/RAY_API_SERVER_ADDRESS, which would override the address Ray is given.

    Both are set inside every Ray job, and often in a user's shell.
    """
    with _ENV_LOCK:
        saved = {name: os.environ.pop(name) for name in _ADDRESS_VARIABLES if name in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


def _client(url: str) -> JobSubmissionClient:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise RuntimeFailure(f"Ray is not installed ({exc})", INSTALL_HINT) from exc
    _probe(url)
    with _explicit_address():
        try:
            return JobSubmissionClient(url)
        except Exception as exc:
            if "ray[default]" in str(exc):
                raise RuntimeFailure(
                    "Ray is installed without its Jobs API client (ray[default])", INSTALL_HINT
                ) from exc
            raise _translate(exc, url, None) from exc


def _call(url: str, submission_id: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ChattuneError:
        raise
    except Exception as exc:
        raise _translate(exc, url, submission_id) from exc


def _translate(exc: BaseException, url: str, submission_id: str | None) -> ChattuneError:
    """Map an exception from the Ray SDK to a one-line chattune error with a fix hint."""
    if isinstance(exc, ChattuneError):
        return exc
    full = str(exc)
    lowered = full.lower()
    text = _summary(full)
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return _unreachable(url, _reason(exc))  # requests and aiohttp errors are OSErrors
    job = f"Ray job {submission_id}" if submission_id else "Ray job"
    if "already exists" in lowered:
        return ConflictError(f"{job} already exists on {url}", "submit with a new submission id")
    if "status code 404" in lowered or f"job {submission_id} does not exist" in lowered:
        return NotFoundError(
            f"{job} not found on {url}",
            "check the submission id (`ray job list --address URL`); a restarted head "
            "forgets its jobs",
        )
    if isinstance(exc, FileNotFoundError | ValueError | TypeError) or "status code 400" in lowered:
        return ValidationError(f"{job} was not submitted: {text}", "fix the runtime env")
    return RuntimeFailure(
        f"Ray Jobs API call on {url} failed: {text}",
        "see the dashboard log on the head (/tmp/ray/session_latest/logs/dashboard.log)",
    )


def _summary(text: str) -> str:
    """One line from an error text; for a server traceback, just its final exception line."""
    lines = [line.strip() for line in text.splitlines() if line.strip(" .")]
    if "Traceback (most recent call last)" in text and len(lines) > 1:
        head = lines[0].split("Traceback", 1)[0].strip()  # "Request failed with ...: "
        lines = [head, lines[-1]] if head else [lines[-1]]
    return _one_line(" ".join(lines))


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
