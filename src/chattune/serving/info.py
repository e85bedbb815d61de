"""What the endpoints SDK returns: :class:`EndpointInfo` and :class:`DeploymentInfo`.

Built from the store's records; an endpoint whose gateway process is gone reads ``dead``.

>>> info = client.endpoints.get("my-ep")
>>> info.scoring_uri
'http://127.0.0.1:41234/score'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chattune.serving.procs import exposure_warning
from chattune.serving.settings import DeploymentSettings

if TYPE_CHECKING:
    from chattune.store.endpoints import DeploymentRecord, EndpointRecord


@dataclass(frozen=True)
class DeploymentInfo:
    """One deployment of an endpoint, as :meth:`EndpointsAPI.get_deployment` returns it."""

    endpoint: str
    name: str
    model: str
    model_path: str
    status: str
    """``creating`` → ``ready`` (``degraded``/``unhealthy`` while restarting) or ``failed``;
    ``unavailable`` while the endpoint's gateway is dead (its workers died with it)."""
    settings: DeploymentSettings
    instances: list[dict[str, Any]]
    """One ``{index, pid, port, state, restarts, settings}`` per worker process
    (``settings``: the fingerprint of the settings it runs; during ``update_deployment``
    the new workers and the serving ones are both listed)."""
    error: str | None
    created_at: float

    @classmethod
    def from_record(cls, record: DeploymentRecord, *, gateway_alive: bool = True) -> DeploymentInfo:
        """The info of a stored deployment; ``unavailable`` when its gateway is dead (the
        record then still holds the last status the gateway wrote)."""
        status, error = record.status, record.error
        if not gateway_alive:
            status = "unavailable"
            error = (
                f"the gateway of endpoint {record.endpoint} is not running; "
                f"`chattune endpoints start {record.endpoint}` brings it back"
            )
        return cls(
            endpoint=record.endpoint,
            name=record.name,
            model=record.model,
            model_path=record.model_path,
            status=status,
            settings=DeploymentSettings.parse(record.settings),
            instances=record.instances if gateway_alive else [],
            error=error,
            created_at=record.created_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``--json`` output)."""
        return {**asdict(self), "settings": self.settings.model_dump()}


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint, as :meth:`EndpointsAPI.get` returns it."""

    name: str
    status: str
    """``creating`` → ``running`` → ``deleting``; ``dead`` when its gateway is gone."""
    auth_mode: str
    host: str
    port: int | None
    pid: int | None
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    deployments: list[str]
    error: str | None
    created_at: float
    description: str = ""
    """What the endpoint is for, as given to ``create``."""

    @classmethod
    def from_record(
        cls, record: EndpointRecord, deployments: list[str], *, gateway_alive: bool
    ) -> EndpointInfo:
        """The info of a stored endpoint; ``dead`` if its started gateway is not alive."""
        status, error = record.status, record.error
        started = status == "running" or (status == "creating" and record.pid)
        if started and not gateway_alive:
            status = "dead"
            error = (
                f"gateway process {record.pid} is not running; `chattune endpoints start "
                f"{record.name}` brings it back (same port when free, keys and deployments)"
            )
        return cls(
            name=record.name,
            status=status,
            auth_mode=record.auth_mode,
            host=record.host,
            port=record.port,
            pid=record.pid,
            traffic=record.traffic,
            mirror_traffic=record.mirror_traffic,
            deployments=deployments,
            error=error,
            created_at=record.created_at,
            description=record.description,
        )

    @property
    def exposure(self) -> str | None:
        """A warning when the gateway listens beyond this machine (see :func:`exposure_warning`)."""
        return exposure_warning(self.host, self.name)

    @property
    def base_url(self) -> str | None:
        """``http://HOST:PORT`` of the gateway, once it listens."""
        return f"http://{self.host}:{self.port}" if self.port else None

    @property
    def scoring_uri(self) -> str | None:
        """``POST`` here with ``Authorization: Bearer <key>``: the ``/score`` contract."""
        return f"{self.base_url}/score" if self.port else None

    @property
    def openai_base_url(self) -> str | None:
        """``base_url`` for OpenAI clients (``/v1/chat/completions``, ``/v1/models``)."""
        return f"{self.base_url}/v1" if self.port else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, URLs included (``--json`` output)."""
        data = asdict(self)
        data.update(scoring_uri=self.scoring_uri, openai_base_url=self.openai_base_url)
        return data
