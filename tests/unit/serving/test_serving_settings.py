"""DeploymentSettings: one declaration, keyword overrides, one error line naming the field."""

from __future__ import annotations

import pytest

from chattune.errors import ValidationError
from chattune.serving.settings import DeploymentSettings, ProbeSettings


def test_defaults_are_the_azure_ml_ones() -> None:
    s = DeploymentSettings()
    assert (s.instance_count, s.request_timeout_ms, s.max_queue_wait_ms) == (1, 90_000, 500)
    assert (s.liveness_probe.initial_delay, s.readiness_probe.initial_delay) == (600.0, 0.0)
    assert (s.engine, s.max_batch_size, s.dtype) == ("transformers", 16, "auto")


def test_concurrency_follows_the_batch_capacity_unless_set() -> None:
    # A default of 1 made 16 clients get 429s and the engine never batch.
    assert DeploymentSettings().max_concurrent_requests_per_instance is None
    assert DeploymentSettings().concurrency == 16
    assert DeploymentSettings(max_batch_size=32).concurrency == 32
    assert DeploymentSettings(max_concurrent_requests_per_instance=2).concurrency == 2


def test_every_field_is_documented() -> None:
    for model in (DeploymentSettings, ProbeSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"


def test_overrides_apply_on_top_of_given_settings() -> None:
    base = DeploymentSettings(instance_count=3, liveness_probe=ProbeSettings(initial_delay=50))
    s = DeploymentSettings.from_overrides(
        base, {"request_timeout_ms": 5000, "liveness_initial_delay": 120}
    )
    assert (s.instance_count, s.request_timeout_ms) == (3, 5000)
    assert s.liveness_probe == ProbeSettings(initial_delay=120)
    probe = ProbeSettings(initial_delay=9, period=1)
    assert (
        DeploymentSettings.from_overrides(None, {"liveness_probe": probe}).liveness_probe == probe
    )


def test_json_round_trip_is_what_the_worker_reads() -> None:
    s = DeploymentSettings(engine="vllm", max_batch_size=32)
    assert DeploymentSettings.parse(s.model_dump_json()) == s
    assert DeploymentSettings.parse("{}") == DeploymentSettings()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_queue_wait_ms": -1}, "max_queue_wait_ms: Input should be greater than or equal"),
        ({"liveness_probe": {"initial_delay": 1, "period": 0}}, "liveness_probe.period: Input"),
        ({"instance_count": "two"}, "instance_count: Input should be a valid integer"),
        ({"readiness_probe": {"failure_threshold": 0}}, "readiness_probe.failure_threshold"),
    ],
)
def test_bad_settings_are_one_line_naming_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DeploymentSettings.from_overrides(None, overrides)
    assert message in caught.value.message
    assert "\n" not in str(caught.value)


def test_all_problems_are_named_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        DeploymentSettings.from_overrides(None, {"instance_count": 0, "max_batch_size": 0})
    assert "instance_count:" in caught.value.message
    assert "max_batch_size:" in caught.value.message
