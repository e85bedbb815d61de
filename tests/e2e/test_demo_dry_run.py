"""`chattune demo --dry-run`: the steps and the checked job spec, from the files shipped in
the package (not the repository's examples/, which a wheel install does not have)."""

from __future__ import annotations

from pathlib import Path

import chattune
from tests.e2e.cli import chattune as run

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHIPPED = Path(chattune.__file__).parent / "examples"


def test_shipped_examples_are_the_repositorys() -> None:
    shipped = sorted(p.name for p in SHIPPED.iterdir() if p.is_file())
    assert shipped == ["job.yaml", "sample_score.json"]
    for name in shipped:
        assert (SHIPPED / name).read_bytes() == (REPO_EXAMPLES / name).read_bytes(), name


def test_demo_dry_run_checks_the_spec_and_starts_nothing(workspace: Path, tmp_path: Path) -> None:
    out = run("demo", "--dry-run", cwd=tmp_path).stdout
    assert "dry run: nothing started" in out and "13. delete endpoint" in out
    assert f"job spec {SHIPPED / 'job.yaml'}: valid" in out
    assert "learning_rate = 0.0002  (model card)" in out
    assert run("jobs", "list", "--json").stdout.strip() == "[]"


def test_demo_dry_run_names_a_bad_spec_in_one_line(workspace: Path, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("model: SmolLM2-135M-Instruct\nparameters: {learning_rate: -1}\n")
    proc = run("demo", "--dry-run", "--spec", str(spec), cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "learning_rate" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    missing = run("demo", "--dry-run", "--spec", str(tmp_path / "no.yaml"), check=False)
    assert missing.returncode != 0 and "no.yaml not found" in missing.stderr
