"""The endpoints CLI: every command documents an example; errors are typed, one line."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from chattune.cli import endpoints as cli_endpoints
from chattune.cli.endpoints import app, deployments_app, parse_weights
from chattune.errors import NotFoundError, ValidationError

runner = CliRunner()


@pytest.mark.parametrize("group", [app, deployments_app])
def test_every_command_has_an_example(group: typer.Typer) -> None:
    for command in group.registered_commands:
        assert "Example: chattune " in (command.callback.__doc__ or ""), command.name


def test_show_unknown_endpoint_raises_not_found(tmp_path) -> None:
    result = runner.invoke(app, ["show", "nope", "--workspace", str(tmp_path / "ws")])
    assert isinstance(result.exception, NotFoundError)


def test_update_needs_weights(tmp_path) -> None:
    result = runner.invoke(app, ["update", "my-ep", "--workspace", str(tmp_path / "ws")])
    assert isinstance(result.exception, ValidationError)
    result = runner.invoke(app, ["update", "my-ep", "--traffic", "demo"])
    assert "expected NAME=PERCENT" in str(result.exception)


def test_list_json_on_empty_workspace(tmp_path) -> None:
    result = runner.invoke(app, ["list", "--json", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0 and result.stdout.strip() == "[]"


def test_parse_weights() -> None:
    assert parse_weights(["blue=90", "green=10"]) == {"blue": 90, "green": 10}
    assert parse_weights(["blue=90 green=10"]) == {"blue": 90, "green": 10}
    with pytest.raises(ValidationError, match="'blue': expected NAME=PERCENT"):
        parse_weights(["blue"])


def test_deployment_options_pass_only_what_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def create_deployment(*args: Any, **kwargs: Any) -> SimpleNamespace:
        calls.append((args, kwargs))
        return SimpleNamespace(to_dict=lambda: {"name": "demo"})

    client = SimpleNamespace(endpoints=SimpleNamespace(create_deployment=create_deployment))
    monkeypatch.setattr(cli_endpoints, "get_client", lambda workspace=None: client)
    argv = ["create", "demo", "-e", "my-ep", "-m", "m:1", "--json"]
    result = runner.invoke(deployments_app, [*argv, "--instance-count", "2", "--engine", "vllm"])
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = calls
    assert args == ("my-ep", "demo", "m:1")
    settings = {k: v for k, v in kwargs.items() if k not in ("wait", "progress")}
    assert settings == {"instance_count": 2, "engine": "vllm"}  # defaults come from the SDK


def test_deployments_update_passes_only_what_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def update_deployment(*args: Any, **kwargs: Any) -> SimpleNamespace:
        calls.append((args, kwargs))
        return SimpleNamespace(to_dict=lambda: {"name": "demo"})

    client = SimpleNamespace(endpoints=SimpleNamespace(update_deployment=update_deployment))
    monkeypatch.setattr(cli_endpoints, "get_client", lambda workspace=None: client)
    argv = ["update", "demo", "-e", "my-ep", "--json", "--instance-count", "3"]
    result = runner.invoke(
        deployments_app,
        [*argv, "--request-timeout-ms", "5000", "--max-concurrent-requests", "4", "--no-wait"],
    )
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = calls
    assert args == ("my-ep", "demo") and kwargs.pop("wait") is False
    kwargs.pop("progress")
    assert kwargs == {
        "instance_count": 3,
        "request_timeout_ms": 5000,
        "max_concurrent_requests_per_instance": 4,
    }
