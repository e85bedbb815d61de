"""How a deployment runs: the one declaration of its settings, their defaults and bounds.

The SDK validates them (``create_deployment``), the store keeps them as JSON, the gateway reads
them back to start and probe workers, and hands them whole to each worker
(``--settings-json``), which reads them with this same model.

>>> DeploymentSettings(instance_count=2).liveness_probe.initial_delay
600.0
>>> DeploymentSettings.from_overrides(None, {"liveness_initial_delay": 30}).liveness_probe.period
10.0
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from chattune.errors import ValidationError

LIVENESS_DELAY_S = {"transformers": 600.0, "vllm": 1800.0}
"""Default liveness ``initial_delay`` per engine: the longest a worker may take to load."""
SHORTHANDS = {"liveness_initial_delay": ("liveness_probe", "initial_delay")}
"""Flat keyword arguments of ``create_deployment`` that set a field of a nested probe."""


class ProbeSettings(BaseModel):
    """A probe of worker health (Azure ML names; seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    initial_delay: float = Field(0.0, ge=0.0)
    """Liveness: the longest a worker may take to become ready (not a fixed wait)."""
    period: float = Field(10.0, gt=0.0)
    """Seconds between probes once the worker is ready."""
    timeout: float = Field(2.0, gt=0.0)
    """Seconds a probe may take before it counts as failed."""
    failure_threshold: int = Field(30, ge=1)
    """Consecutive failures before acting (restart for liveness, out of rotation for readiness)."""
    success_threshold: int = Field(1, ge=1)
    """Consecutive successes before a readiness-failed worker gets traffic again."""


class DeploymentSettings(BaseModel):
    """Request, probe, scale and engine settings of one deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instance_count: int = Field(1, ge=1, le=64)
    """Worker processes, each holding one copy of the model."""
    request_timeout_ms: int = Field(90_000, ge=1)
    """Most milliseconds a request may take in a worker (else 408)."""
    max_concurrent_requests_per_instance: int | None = Field(None, ge=1)
    """Requests one worker serves at once; more wait for a slot. Default: the engine's batch
    capacity (``max_batch_size``), so concurrent requests batch instead of queueing."""
    max_queue_wait_ms: int = Field(500, ge=0)
    """Most milliseconds a request waits for a slot (else 429)."""
    liveness_probe: ProbeSettings = Field(
        default_factory=lambda: ProbeSettings(initial_delay=LIVENESS_DELAY_S["transformers"])
    )
    """Restarts a worker that stops answering; its ``initial_delay`` bounds model loading
    (default 600 s, and 1,800 s for ``engine: vllm``, whose cold start on a CPU compiles for
    five minutes or more)."""
    readiness_probe: ProbeSettings = Field(default_factory=ProbeSettings)
    """Takes a worker out of rotation while it does not answer ``/health/ready``."""
    engine: Literal["transformers", "vllm"] = "transformers"
    """``transformers`` (continuous batching, CPU or GPU) or ``vllm`` (its own environment)."""
    max_batch_size: int = Field(16, ge=1, le=1024)
    """Most requests one worker generates for together (rows of the running batch)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Weights' dtype (transformers engine): ``auto`` is bf16 on GPUs and, on a CPU, whichever
    of float32 and bf16 a measured forward pass finds faster (the worker's log says which)."""

    @property
    def concurrency(self) -> int:
        """Requests a worker admits at once (``max_concurrent_requests_per_instance``, else
        ``max_batch_size``)."""
        return self.max_concurrent_requests_per_instance or self.max_batch_size

    def fingerprint(self) -> str:
        """A short digest of every setting: which settings a worker was started with."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _liveness_by_engine(cls, data: Any) -> Any:
        """The default liveness ``initial_delay`` follows the engine's start-up time."""
        if isinstance(data, dict) and "liveness_probe" not in data:
            delay = LIVENESS_DELAY_S.get(data.get("engine", "transformers"))
            if delay is not None:
                return {**data, "liveness_probe": {"initial_delay": delay}}
        return data

    @pydantic.field_validator("liveness_probe")
    @classmethod
    def _loading_takes_time(cls, probe: ProbeSettings) -> ProbeSettings:
        if probe.initial_delay <= 0:
            raise ValueError("initial_delay must be > 0 (the longest model loading may take)")
        return probe

    @classmethod
    def from_overrides(
        cls, base: DeploymentSettings | None, overrides: dict[str, Any]
    ) -> DeploymentSettings:
        """``base`` (or the defaults) with ``overrides`` applied, checked as a whole.

        ``overrides`` are field names (``instance_count=2``, ``liveness_probe={...}``) or a
        :data:`SHORTHANDS` name (``liveness_initial_delay=30``). Any problem raises one
        :class:`~chattune.errors.ValidationError` naming every field at fault.
        """
        # Without a base, defaults that depend on other fields (liveness on the engine) are
        # left to the model.
        data = base.model_dump() if base is not None else {}
        for key, value in overrides.items():
            if key in SHORTHANDS:
                probe, field = SHORTHANDS[key]
                data[probe] = {**data.get(probe, {}), field: value}
            else:
                data[key] = value.model_dump() if isinstance(value, BaseModel) else value
        return cls.parse(data)

    @classmethod
    def parse(cls, data: dict[str, Any] | str) -> DeploymentSettings:
        """Validate a dict or JSON text; problems become one ``ValidationError`` line."""
        try:
            if isinstance(data, str):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                "deployment settings: " + describe(exc),
                "see `chattune deployments create --help` for each setting and its bounds",
            ) from None


def describe(exc: pydantic.ValidationError) -> str:
    """pydantic errors as ``field: message, got value`` parts joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        if error["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown setting")
            continue
        message = error["msg"].removeprefix("Value error, ")
        value = error["input"]
        scalar = value is None or isinstance(value, str | int | float)
        parts.append(f"{where}: {message}, got {value!r}" if scalar else f"{where}: {message}")
    return "; ".join(parts)
