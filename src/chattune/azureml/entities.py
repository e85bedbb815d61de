"""``azure.ai.ml.entities``: what the notebook builds (Model, endpoints, deployments, probes,
request settings, compute) and what the operations return. Plain data: the operations map
each to a call of chattune's SDK.

>>> ProbeSettings(initial_delay=600).fields()
{'initial_delay': 600}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chattune.azureml.constants import AssetTypes


@dataclass
class Input:
    """A job input: a local file (``uri_file``) or folder (``uri_folder``); ``mode`` and the
    platform's other options have no local meaning."""

    type: str = AssetTypes.URI_FILE
    path: str | None = None
    mode: str | None = None
    description: str | None = None


@dataclass
class Model:
    """A model: to register (``path="azureml://jobs/<job>/outputs/<output>"``), or as
    ``models.get`` returns it (``id`` is what a job or a deployment takes as its model)."""

    path: str | None = None
    type: str = AssetTypes.CUSTOM_MODEL
    name: str | None = None
    version: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    id: str | None = None


@dataclass
class ProbeSettings:
    """A liveness or readiness probe (seconds); unset fields keep chattune's defaults."""

    initial_delay: int | float | None = None
    period: int | float | None = None
    timeout: int | float | None = None
    failure_threshold: int | None = None
    success_threshold: int | None = None

    def fields(self) -> dict[str, Any]:
        """The fields that were set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class OnlineRequestSettings:
    """Per-request limits of a deployment; unset fields keep chattune's defaults."""

    request_timeout_ms: int | None = None
    max_concurrent_requests_per_instance: int | None = None
    max_queue_wait_ms: int | None = None

    def fields(self) -> dict[str, Any]:
        """The fields that were set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ManagedOnlineEndpoint:
    """An online endpoint; set ``traffic`` and ``begin_create_or_update`` it again to apply."""

    name: str
    description: str | None = None
    auth_mode: str = "key"
    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    scoring_uri: str | None = None
    openapi_uri: str | None = None
    provisioning_state: str | None = None


@dataclass
class ManagedOnlineDeployment:
    """A deployment of a registered model on an endpoint. ``instance_type`` must be a size
    of this machine that the model allows (``compute.list_sizes()``)."""

    name: str
    endpoint_name: str
    model: str | Model | None = None
    instance_type: str | None = None
    instance_count: int = 1
    liveness_probe: ProbeSettings | None = None
    readiness_probe: ProbeSettings | None = None
    request_settings: OnlineRequestSettings | None = None
    description: str | None = None
    provisioning_state: str | None = None


@dataclass
class AmlCompute:
    """A compute target. ``size`` must be a size of this machine (``compute.list_sizes()``):
    creating one names this machine; ``tier``, instance counts and scale-down have no
    local meaning."""

    name: str
    size: str | None = None
    type: str = "amlcompute"
    tier: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    idle_time_before_scale_down: int | None = None
    provisioning_state: str | None = None


@dataclass(frozen=True)
class VmSize:
    """One compute size of this machine (``compute.list_sizes()``)."""

    name: str
    gpus: int
    vcpus: int
    memory_gb: float
    family: str = "local"


@dataclass(frozen=True)
class EndpointAuthKeys:
    """``online_endpoints.get_keys``: either key goes in ``Authorization: Bearer``."""

    primary_key: str
    secondary_key: str


@dataclass
class Job:
    """A submitted pipeline job, as ``jobs.get`` returns it (platform status words:
    ``Queued``, ``Running``, ``Completed``, ``Failed``, ``Canceled``)."""

    name: str
    display_name: str
    status: str
    experiment_name: str
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    type: str = "pipeline"


@dataclass
class PipelineJobSettings:
    """``pipeline_object.settings``; ``default_compute`` names the compute of every step
    that names none."""

    force_rerun: bool = False
    continue_on_step_failure: bool = False
    default_compute: str | None = None


@dataclass
class PipelineJob:
    """What calling a ``@pipeline`` function returns: its display name, the one
    fine-tuning step and the outputs it maps; ``jobs.create_or_update`` submits it."""

    display_name: str
    step: Any
    """The :class:`~chattune.azureml.pipelines.PipelineStep` the function called."""
    outputs: dict[str, Any] = field(default_factory=dict)
    settings: PipelineJobSettings = field(default_factory=PipelineJobSettings)
    description: str | None = None
    experiment_name: str | None = None
    name: str | None = None
    """Left unset, the job's name is generated (a display name can be longer than a name)."""
