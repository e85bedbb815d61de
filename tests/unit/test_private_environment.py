"""Telemetry off and caches under the user cache dir by default; one switch turns it on."""

from __future__ import annotations

from pathlib import Path

import pytest

from chattune.workspace import NO_TELEMETRY, private_environment


def test_defaults_turn_telemetry_off_and_move_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path))
    env: dict[str, str] = {"DO_NOT_TRACK": "false"}  # what a user set stays
    private_environment(env)
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert env["DO_NOT_TRACK"] == "false"
    assert env["MPLCONFIGDIR"] == str(tmp_path / "matplotlib")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "torchinductor")
    assert env["TORCH_HOME"] == str(tmp_path / "torch")


def test_chattune_telemetry_switch_leaves_telemetry_to_the_libraries() -> None:
    env = {"CHATTUNE_TELEMETRY": "1"}
    private_environment(env)
    assert not set(NO_TELEMETRY) & set(env)
    assert "MPLCONFIGDIR" in env  # caches stay under the user cache dir either way


def test_importing_chattune_sets_them_before_mlflow_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import chattune, os; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == "true"
