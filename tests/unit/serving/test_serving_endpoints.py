"""EndpointsAPI checks that need no process: names, conflicts, traffic, settings, dead gateways."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chattune.errors import ConflictError, NotFoundError, ValidationError
from chattune.serving.endpoints import EndpointsAPI
from chattune.serving.keys import write_keys
from chattune.serving.settings import DeploymentSettings, ProbeSettings
from chattune.workspace import Workspace


@pytest.fixture
def api(tmp_path: Path) -> EndpointsAPI:
    def resolve(ref: str) -> tuple[str, Path]:
        raise NotFoundError(f"model {ref} not found", "register it")

    return EndpointsAPI(Workspace.init(tmp_path / "ws"), resolve_model=resolve)


def add_endpoint(
    api: EndpointsAPI,
    name: str,
    pid: int | None,
    deployments: list[str],
    traffic: dict[str, int] | None = None,
) -> None:
    """Records as a gateway would leave them, without starting one."""
    api.store.insert(name, "127.0.0.1", "key")
    api.store.update(name, port=1, pid=pid, status="running")
    api.store.set_traffic(name, traffic or {}, {})
    api.ws.endpoint_dir(name).mkdir(parents=True, exist_ok=True)
    write_keys(api.ws.endpoint_dir(name) / "keys.json", {"primary": "p" * 43, "secondary": "s"})
    for d in deployments:
        api.store.insert_deployment(name, d, "m:1", "/m", {})
        api.store.update_deployment(name, d, status="ready")


def test_invalid_name_and_auth_mode_are_refused(api: EndpointsAPI) -> None:
    with pytest.raises(ValidationError, match="endpoint name 'x' is invalid"):
        api.create("x")
    with pytest.raises(ValidationError, match="auth_mode 'aad_token' is not supported"):
        api.create("my-ep", auth_mode="aad_token")


def test_existing_name_is_a_conflict(api: EndpointsAPI) -> None:
    add_endpoint(api, "my-ep", None, [])
    with pytest.raises(ConflictError, match="endpoint my-ep already exists"):
        api.create("my-ep")


def test_missing_things_are_not_found_with_hints(api: EndpointsAPI) -> None:
    with pytest.raises(NotFoundError, match="endpoint nope not found"):
        api.get("nope")
    add_endpoint(api, "my-ep", None, [])
    with pytest.raises(NotFoundError, match="deployment demo not found on endpoint my-ep"):
        api.get_deployment("my-ep", "demo")
    with pytest.raises(NotFoundError, match=r"request file .*missing\.json not found"):
        api.invoke("my-ep", "missing.json")


def test_gateway_that_died_shows_dead(api: EndpointsAPI) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    add_endpoint(api, "my-ep", proc.pid, [])
    info = api.get("my-ep")
    assert info.status == "dead"
    assert f"gateway process {proc.pid} is not running" in (info.error or "")


@pytest.fixture
def gateway_pid() -> Iterator[int]:
    """A live process that passes for a gateway (its command line names the module)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "chattune.serving.gateway"]
    )
    yield proc.pid
    proc.kill()
    proc.wait()


def test_dead_gateway_deployments_are_unavailable_and_changes_refused(api: EndpointsAPI) -> None:
    add_endpoint(api, "my-ep", None, ["blue"])  # a gateway that is not running
    [info] = api.list_deployments("my-ep")
    assert info.status == "unavailable" and info.instances == []
    assert "chattune endpoints start my-ep" in (info.error or "")
    assert api.get_deployment("my-ep", "blue").status == "unavailable"
    with pytest.raises(ConflictError, match="run `chattune endpoints start my-ep` first"):
        api.update("my-ep", traffic={"blue": 100})
    assert api.get("my-ep").traffic == {}


def test_only_a_dead_gateway_can_be_started(api: EndpointsAPI, gateway_pid: int) -> None:
    add_endpoint(api, "my-ep", gateway_pid, ["blue"])
    assert api.get_deployment("my-ep", "blue").status == "ready"
    with pytest.raises(ConflictError, match="only a dead gateway can be started"):
        api.start("my-ep")


def test_update_validates_traffic(api: EndpointsAPI, gateway_pid: int) -> None:
    add_endpoint(api, "my-ep", gateway_pid, ["blue", "green"])
    with pytest.raises(ValidationError, match="weights sum to 90; they must sum to 100"):
        api.update("my-ep", traffic={"blue": 90})
    with pytest.raises(ValidationError, match="unknown deployment 'pink'"):
        api.update("my-ep", traffic={"pink": 100})
    with pytest.raises(ValidationError, match="blue has live traffic"):
        api.update("my-ep", traffic={"blue": 100}, mirror_traffic={"blue": 10})
    info = api.update("my-ep", traffic={"blue": 100}, mirror_traffic={"green": 20})
    assert (info.traffic, info.mirror_traffic) == ({"blue": 100}, {"green": 20})
    assert api.update("my-ep", traffic={"green": 100}, mirror_traffic={}).traffic == {"green": 100}


def test_deployment_with_traffic_cannot_be_deleted(api: EndpointsAPI) -> None:
    add_endpoint(api, "my-ep", None, ["blue"], traffic={"blue": 100})
    with pytest.raises(ConflictError, match="deployment blue still gets traffic"):
        api.delete_deployment("my-ep", "blue")


def test_create_deployment_checks_settings_and_endpoint(api: EndpointsAPI) -> None:
    add_endpoint(api, "my-ep", None, [])
    with pytest.raises(ValidationError) as caught:
        api.create_deployment("my-ep", "demo", "m:1", instance_count=0)
    assert caught.value.message == (
        "deployment settings: instance_count: Input should be greater than or equal to 1, got 0"
    )
    with pytest.raises(ValidationError, match="liveness_probe: initial_delay must be > 0"):
        api.create_deployment("my-ep", "demo", "m:1", liveness_initial_delay=0)
    with pytest.raises(ValidationError, match="engine: Input should be 'transformers' or 'vllm'"):
        api.create_deployment("my-ep", "demo", "m:1", engine="tgi")
    with pytest.raises(ValidationError, match="beam_width: unknown setting"):
        api.create_deployment("my-ep", "demo", "m:1", beam_width=2)
    with pytest.raises(ConflictError, match="endpoint my-ep is dead, not running"):
        api.create_deployment("my-ep", "demo", "m:1")


def test_deployment_settings_round_trip_through_the_store(api: EndpointsAPI) -> None:
    add_endpoint(api, "my-ep", None, ["blue"])
    settings = DeploymentSettings(
        instance_count=2, engine="vllm", readiness_probe=ProbeSettings(failure_threshold=3)
    )
    api.store.insert_deployment("my-ep", "green", "m:1", "/m", settings.model_dump())
    info = api.get_deployment("my-ep", "green")
    assert info.settings == settings
    assert info.to_dict()["settings"]["readiness_probe"]["failure_threshold"] == 3
    # A record without settings (an old row) reads as the defaults.
    assert api.get_deployment("my-ep", "blue").settings == DeploymentSettings()
