"""Mirror pairs are bounded by count and age per endpoint."""

from __future__ import annotations

import time
from pathlib import Path

from chattune.store import open_store
from chattune.store.resources import MirrorPairStore, ModelEventStore


def test_pairs_keep_the_newest_up_to_the_cap(tmp_path: Path) -> None:
    pairs = MirrorPairStore(open_store(f"sqlite:///{tmp_path / 'db.sqlite'}").db)
    for i in range(7):
        pairs.add("e", {"i": i}, cap=5, max_age_s=3600)
        time.sleep(0.002)
    pairs.add("other", {"i": 0}, cap=5, max_age_s=3600)
    assert [p["i"] for p in pairs.list("e")] == [2, 3, 4, 5, 6]
    assert pairs.count("other") == 1


def test_pairs_older_than_the_age_limit_go(tmp_path: Path) -> None:
    pairs = MirrorPairStore(open_store(f"sqlite:///{tmp_path / 'db.sqlite'}").db)
    pairs.add("e", {"i": 0}, cap=10, max_age_s=3600)
    time.sleep(0.05)
    pairs.add("e", {"i": 1}, cap=10, max_age_s=0.01)
    assert [p["i"] for p in pairs.list("e")] == [1]


def test_model_events_in_order(tmp_path: Path) -> None:
    events = ModelEventStore(open_store(f"sqlite:///{tmp_path / 'db.sqlite'}").db)
    events.add("m", "2", "warning", "forced")
    events.add("m", "1", "promoted", "ok")
    assert [e["message"] for e in events.list("m", "2")] == ["forced"]
