"""Compute targets: named, checked, and a job naming an unknown one never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.e2e.cli import chattune

from chattune import Client
from chattune.errors import NotFoundError, ValidationError


def test_target_names_and_types_are_checked(workspace: Path) -> None:
    compute = Client(workspace).compute
    with pytest.raises(ValidationError, match="needs --address"):
        compute.create("cluster", type="ray")
    with pytest.raises(ValidationError, match="not known"):
        compute.create("cluster", type="slurm")
    with pytest.raises(ValidationError, match="built in"):
        compute.create("local", type="local")
    local = compute.create("box", type="local")
    assert [t.name for t in compute.list()] == ["local", "box"] and local.type == "local"
    compute.delete("box")
    with pytest.raises(NotFoundError, match=r"known: local\)"):
        compute.get("box")


def test_unknown_compute_is_refused_at_create(workspace: Path, tmp_path: Path) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}]}\n')
    spec = tmp_path / "job.yaml"
    spec.write_text(f"model: tiny-random-phi3\ncompute: nope\ndata:\n  train: {data}\n")
    proc = chattune("jobs", "create", "-f", str(spec), check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: compute target 'nope' is not defined (known: local)")
    assert chattune("jobs", "list", "--json").stdout.strip() == "[]"
