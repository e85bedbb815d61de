"""Serving fixtures: a fake engine for handler tests (tiny real model: tests/conftest.py)."""

from __future__ import annotations

import pytest
from serving_helpers import FakeEngine


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()
