"""`chattune engines`: the serving engines deployments can use, and installing them."""

from __future__ import annotations

import typer

from chattune.cli.common import JsonOpt, console, get_client, print_json

app = typer.Typer(
    help="Serving engines: transformers (built in) and vLLM (its own environment).",
    no_args_is_help=True,
)


@app.command("list")
def list_(json: bool = JsonOpt) -> None:
    """Which engines are installed, and where.

    Example: chattune engines list
    """
    engines = get_client().engines.list()
    if json:
        print_json(engines)
        return
    for e in engines:
        mark = "[green]installed[/]" if e["installed"] else "[yellow]not installed[/]"
        console.print(f"{e['name']:14} {mark}  {e['where']}")


@app.command("install")
def install(name: str = typer.Argument(..., help="Engine: vllm")) -> None:
    """Install an engine into a virtual environment of its own (idempotent).

    Example: chattune engines install vllm
    """
    where = get_client().engines.install(name, progress=lambda m: console.print(f"  {m}"))
    console.print(f"[green]✓[/] {name} ready in {where}")
