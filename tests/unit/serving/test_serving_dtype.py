"""``dtype: auto`` is measured once per model and machine, then read from the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from chattune.serving.worker import dtype


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "serving" / "dtype.json"


@pytest.fixture
def model_dir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


class Counting:
    """A model whose forward passes are counted (the measurement's cost)."""

    def __init__(self) -> None:
        self.passes = 0

    def to(self, _: Any) -> Counting:
        return self

    def __call__(self, **kwargs: Any) -> None:
        self.passes += 1


def test_auto_is_measured_once_then_cached_per_model_and_cpu(
    cache: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Counting()
    first, why = dtype.choose_dtype(model, "auto", "cpu", model_dir)
    assert model.passes == 6 and "measured on this CPU" in why and str(cache) in why
    [entry] = json.loads(cache.read_text()).values()
    assert entry["dtype"] == first and "float32" in entry["measured"]

    again, why = dtype.choose_dtype(model, "auto", "cpu", model_dir)  # a later start
    assert (again, model.passes) == (first, 6)
    assert why.startswith("cached for this model and CPU") and entry["measured"] in why

    monkeypatch.setattr(dtype, "cpu_signature", lambda: "another CPU")
    dtype.choose_dtype(model, "auto", "cpu", model_dir)
    assert model.passes == 12 and len(json.loads(cache.read_text())) == 2


def test_a_changed_model_or_a_broken_cache_is_measured_again(cache: Path, model_dir: Path) -> None:
    model = Counting()
    dtype.choose_dtype(model, "auto", "cpu", model_dir)
    config = model_dir / "config.json"
    config.write_text(config.read_text() + "\n")  # new weights or config: a new key
    dtype.choose_dtype(model, "auto", "cpu", model_dir)
    assert model.passes == 12
    cache.write_text("{not json")
    chosen, _ = dtype.choose_dtype(model, "auto", "cpu", model_dir)
    assert model.passes == 18 and json.loads(cache.read_text())  # rewritten whole
    assert chosen in ("float32", "bfloat16")


def test_settings_other_than_auto_and_gpus_measure_nothing(cache: Path, model_dir: Path) -> None:
    model = Counting()
    assert dtype.choose_dtype(model, "float32", "cpu", model_dir)[0] == "float32"
    assert dtype.choose_dtype(model, "auto", "cuda:0", model_dir) == ("bfloat16", "GPU")
    assert model.passes == 0 and not cache.exists()
