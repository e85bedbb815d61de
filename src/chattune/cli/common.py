"""What every CLI module shares: the client, the console, JSON output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from chattune.client import Client

# soft_wrap: a path or an error line is never broken in two (copy-paste, grep, pipes).
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

WorkspaceOpt = typer.Option(
    None,
    "--workspace",
    "-w",
    envvar="CHATTUNE_WORKSPACE",
    help="Workspace folder.",
    show_default="./.chattune",
)
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")


def get_client(workspace: str | None = None) -> Client:
    """The SDK client every command calls (workspace from option, env or ./.chattune)."""
    from chattune.client import Client

    return Client(workspace=workspace)


def print_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (no colour, no wrapping), for ``--json``."""
    typer.echo(json.dumps(value, indent=2, default=str))
