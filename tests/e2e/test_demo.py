"""`chattune demo` on SmolLM2-135M-Instruct: fine-tuning lowers the eval loss (slow, ~2 min)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.cli import chattune


@pytest.mark.slow
def test_demo_fine_tunes_serves_and_cleans_up(workspace: Path, tmp_path: Path) -> None:
    out = chattune("demo", cwd=tmp_path, timeout=900).stdout
    base, tuned = map(float, re.search(r"base (\d+\.\d+) → fine-tuned (\d+\.\d+)", out).groups())
    assert tuned < base
    for name in ("rouge_l", "bleu"):  # generation metrics on the test_gen sample, both models
        assert re.search(rf"{name} on 16 test_gen prompts: base \d+\.\d+ → fine-tuned \d+", out)
    assert "sample 3:" in out and "sample 4:" not in out  # three answers side by side
    assert out.count("reference:") == out.count("base:") == out.count("fine_tuned:") == 3
    assert re.search(r"assistant: \S", out)
    assert "chattune-demo deleted" in out
    assert chattune("endpoints", "list", "--json").stdout.strip() == "[]"
