"""The endpoints CLI: every command documents an example; errors are typed, one line."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from chattune.cli.endpoints import app, deployments_app
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
