"""The wheel alone is enough: built from this tree, installed into a fresh virtual
environment, `chattune --help` and `chattune demo --dry-run` work with no repository around.

Offline: the fresh environment sees the test interpreter's installed packages through a
``.pth`` line (never its ``chattune``: that comes from the wheel), and the wheel is built
without build isolation (setuptools is already installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def build_wheel(out: Path) -> Path:
    """``chattune-*.whl`` built from a copy of the sources (the tree stays clean)."""
    tree = out / "tree"
    tree.mkdir(parents=True)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, tree / part)
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", out / "dist", tree, cwd=out)  # fmt: skip
    (wheel,) = (out / "dist").glob("chattune-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_help_and_the_demo_dry_run(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "build")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    (purelib / "shared.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel,
         cwd=tmp_path)  # fmt: skip
    home = tmp_path / "home"  # no chattune sources here or above
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"CHATTUNE_WORKSPACE": str(tmp_path / "ws"), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    where = _run(python, "-c", "import chattune; print(chattune.__file__)", cwd=home, env=env)
    assert where.startswith(str(purelib)), where  # the wheel's chattune, not the sources
    assert "Usage: chattune" in _run(venv / "bin" / "chattune", "--help", cwd=home, env=env)
    out = _run(venv / "bin" / "chattune", "demo", "--dry-run", cwd=home, env=env)
    assert "dry run: nothing started" in out
    assert f"job spec {purelib / 'chattune' / 'examples' / 'job.yaml'}: valid" in out
