"""Serving fixtures: a fake engine for handler tests (the tiny real model is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from serving_helpers import FakeEngine


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()
