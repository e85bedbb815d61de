"""Traffic rules: validation messages, weighted picks (property tests), key checks."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chattune.errors import ValidationError
from chattune.serving.keys import KeyStore, bearer_token, key_matches, write_keys
from chattune.serving.traffic import check_name, pick, pick_mirror, traffic_problems

weights = st.dictionaries(
    st.sampled_from(["blue", "green", "red", "amber"]), st.integers(0, 100), min_size=1
)


@given(weights, st.floats(0, 1, exclude_max=True))
def test_pick_only_returns_deployments_with_weight(w: dict[str, int], draw: float) -> None:
    chosen = pick(w, draw)
    if sum(w.values()) == 0:
        assert chosen is None
    else:
        assert chosen is not None and w[chosen] > 0


@settings(max_examples=25, deadline=None)
@given(weights.filter(lambda w: sum(w.values()) > 0))
def test_pick_distribution_matches_weights(w: dict[str, int]) -> None:
    n = 2000
    counts = Counter(pick(w, (i + 0.5) / n) for i in range(n))  # evenly spread draws
    total = sum(w.values())
    for name, weight in w.items():
        assert abs(counts[name] / n - weight / total) <= 1 / n + 1e-9


def test_pick_edges() -> None:
    assert pick({"blue": 90, "green": 10}, 0.0) == "blue"
    assert pick({"blue": 90, "green": 10}, 0.95) == "green"
    assert pick({"blue": 90, "green": 10}, 1.0) == "green"
    assert pick({}, 0.5) is None


def test_mirror_share_is_a_percent_of_requests() -> None:
    n = 1000
    mirrored = Counter(pick_mirror({"green": 10, "red": 5}, i / n) for i in range(n))
    assert (mirrored["green"], mirrored["red"], mirrored[None]) == (100, 50, 850)


def test_traffic_problems() -> None:
    deployments = ["blue", "green"]
    assert traffic_problems({"blue": 100}, {"green": 10}, deployments) == []
    assert traffic_problems({}, {}, deployments) == []
    assert traffic_problems({"blue": 60, "green": 30}, {}, deployments) == [
        "traffic: weights sum to 90; they must sum to 100"
    ]
    assert traffic_problems({"pink": 100}, {}, deployments) == [
        "traffic: unknown deployment 'pink' (deployments: blue, green)"
    ]
    assert traffic_problems({"blue": 100}, {"green": 60}, deployments) == [
        "mirror_traffic: weights sum to 60; at most 50"
    ]
    assert (
        "green has live traffic"
        in traffic_problems({"blue": 50, "green": 50}, {"green": 10}, deployments)[0]
    )
    assert "no deployment has live traffic" in traffic_problems({}, {"green": 10}, deployments)[0]
    assert "whole number 0-100" in traffic_problems({"blue": 101}, {}, deployments)[0]


@pytest.mark.parametrize("name", ["ab", "1abc", "abc-", "a" * 33, "my_ep", "my ep"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="3-32 letters"):
        check_name("endpoint", name)


@pytest.mark.parametrize("name", ["abc", "my-ep-2", "A" * 32])
def test_good_names_pass(name: str) -> None:
    check_name("endpoint", name)


def test_keys_match_either_key_and_reload_on_change(tmp_path) -> None:
    path = tmp_path / "keys.json"
    write_keys(path, {"primary": "p" * 43, "secondary": "s" * 43})
    assert path.stat().st_mode & 0o777 == 0o600
    store = KeyStore(path)
    assert store.check("Bearer " + "p" * 43)
    assert store.check("bearer " + "s" * 43)
    assert not store.check("Bearer " + "p" * 42)
    assert not store.check(None)
    assert not store.check("p" * 43)  # no scheme
    write_keys(path, {"primary": "q" * 43, "secondary": "s" * 43})
    assert not store.check("Bearer " + "p" * 43)
    assert store.check("Bearer " + "q" * 43)


def test_key_helpers() -> None:
    assert key_matches("abc", ["xyz", "abc"])
    assert not key_matches("abc", [])
    assert bearer_token("Bearer  tok ") == "tok"
    assert bearer_token("Basic tok") is None
