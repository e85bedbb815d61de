"""Bad input: one line naming the thing and the fix, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.cli import chattune


def _one_clean_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "(fix: " in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["models", "show", "no-such-model"], "no-such-model"),
        (
            ["data", "download", "no-such-dataset", "--split-pc", "5", "--out", "d"],
            "no-such-dataset",
        ),
        (["jobs", "show", "no-such-job"], "unknown job 'no-such-job'"),
        (["endpoints", "show", "no-such-ep"], "no-such-ep"),
        (["jobs", "create", "-f", "missing.yaml"], "missing.yaml not found"),
    ],
)
def test_unknown_things_are_named(
    workspace: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    line = _one_clean_line(chattune(*args, cwd=tmp_path, check=False))
    assert expected in line


def test_malformed_spec_names_file_line_and_key(workspace: Path, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "model: tiny-random-phi3\ndata:\n  train: t.jsonl\nparameters:\n  num_train_epoch: 2\n"
    )
    line = _one_clean_line(chattune("jobs", "create", "-f", str(spec), check=False))
    assert f"{spec}:5: parameters.num_train_epoch: unknown key" in line


def test_unknown_model_in_spec(workspace: Path, tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text("")
    spec = tmp_path / "job.yaml"
    spec.write_text("model: Phi-9\ndata:\n  train: t.jsonl\n")
    line = _one_clean_line(chattune("jobs", "create", "-f", str(spec), cwd=tmp_path, check=False))
    assert "unknown model 'Phi-9'" in line


def test_help_imports_no_heavy_library() -> None:
    # --help registers every CLI module, so this covers all of them.
    code = (
        "import sys; sys.argv = ['chattune', '--help']\n"
        "from chattune.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'transformers', 'datasets', 'pyarrow', 'matplotlib', 'mlflow',\n"
        "         'fastapi', 'httpx', 'peft'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
