"""Nothing leaves the machine: a whole tiny job (CLI, job process, every stage) under a
socket guard attempts no connection to a non-local address, and writes nothing outside
the workspace, the user cache and the temp folder (nothing in ~/.config)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from chattune.catalog.assets import cache_dir

# Imported first by every Python process of the job (PYTHONPATH): records and refuses any
# connection or name lookup that is not this machine.
GUARD = """
import os, socket

_LOG = os.environ["CHATTUNE_GUARD_LOG"]
_LOCAL = {"", "localhost", "ip6-localhost", "::1", "::", "0.0.0.0", socket.gethostname()}


def _local(host):
    host = host.decode() if isinstance(host, bytes) else str(host)
    return host in _LOCAL or host.startswith("127.")


def _note(what):
    with open(_LOG, "a") as f:
        f.write(f"pid {os.getpid()}: {what}\\n")


def _guard(real):
    def call(self, address, *rest):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _note(f"{real.__name__} {address}")
            raise OSError("network refused by the test's socket guard")
        return real(self, address, *rest)
    return call


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _local(host):
        _note(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "name lookup refused by the socket guard")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
socket.getaddrinfo = getaddrinfo
"""

JOB = """\
model: tiny-random-phi3
data:
  train: data/train_sft.jsonl
  test: data/test_sft.jsonl
  test_gen: data/test_gen.jsonl
parameters:
  max_steps: 2
  max_seq_length: 128
  logging_steps: 1
  generation_eval_rows: 2
  generation_max_new_tokens: 4
"""

# Variables that would hide what a plain user's shell gets: MLflow treats a CI or pytest
# environment as "telemetry off", and the chattune settings under test must not be preset.
_DROP = ("PYTEST_", "CI", "GITHUB_", "MLFLOW_", "HF_", "DO_NOT_TRACK", "MPLCONFIGDIR", "TORCH")
_DROP += ("TRITON_", "XDG_", "RAY_USAGE", "VLLM_", "CHATTUNE_", "BUILDKITE", "JENKINS_URL")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_a_job_makes_no_connection_and_writes_only_workspace_cache_and_temp(
    tmp_path: Path, tiny_model_dir: Path, ultrachat_sample_dir: Path
) -> None:
    home, run, tmp, guard = (tmp_path / d for d in ("home", "run", "tmp", "guard"))
    for d in (home, run, tmp, guard):
        d.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    (run / "job.yaml").write_text(JOB)
    log = tmp_path / "connections.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env |= {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHONPATH": str(guard),
        "CHATTUNE_GUARD_LOG": str(log),
        "CHATTUNE_CACHE": str(cache_dir()),  # the offline assets; new cache files go there
        "CHATTUNE_WORKSPACE": str(run / "ws"),
    }

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "chattune", *args],
            cwd=run,
            env=env,
            text=True,
            capture_output=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    guard_works = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('example.com', 443)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert guard_works.returncode != 0 and "example.com" in log.read_text()
    log.unlink()

    cli("data", "download", "ultrachat-sample", "--split-pc", "20", "--out", "data")
    cli("jobs", "create", "-f", "job.yaml", "--name", "private", "--stream")
    shown = cli("jobs", "show", "private", "--metrics")
    assert "rouge_l" in shown

    assert not log.exists(), log.read_text()  # no lookup, no connection, by any process
    assert not (home / ".config").exists()
    outside_cache = {p for p in _files(home) if not p.is_relative_to(home / ".cache")}
    assert outside_cache == set()
    assert {p.name for p in run.iterdir()} == {"ws", "data", "job.yaml"}
    assert socket.gethostname()  # (the guard treated this machine's own name as local)
