"""`chattune models`: the foundation catalog and the registry of fine-tuned models."""

from __future__ import annotations

import typer
from rich.table import Table

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json

app = typer.Typer(
    help="Foundation-model catalog and registered (fine-tuned) models.", no_args_is_help=True
)


@app.command("catalog")
def catalog(workspace: str = WorkspaceOpt, json: bool = JsonOpt) -> None:
    """List the foundation models you can fine-tune.

    Example: chattune models catalog
    """
    cards = get_client(workspace).models.catalog()
    if json:
        print_json([c.model_dump() for c in cards])
        return
    table = Table("name", "version", "params", "context", "license", "source")
    for c in cards:
        table.add_row(c.name, c.version, c.parameters, str(c.context_length), c.license, c.source)
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Catalog or registered model name"),
    label: str = typer.Option(None, "--label", help="Label to resolve, e.g. latest"),
    version: str = typer.Option(None, "--version", help="Exact version"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Show a model card (catalog) or a registered model version with its lineage.

    Example: chattune models show Phi-3-mini-4k-instruct --label latest
    """
    models = get_client(workspace).models
    if models.is_catalog(name):
        data = models.get(name, label=label, version=version).model_dump()
    else:
        data = models.show(name, version=version, label=label).to_dict()
    if json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"[bold]{key:16}[/] {value}")


@app.command("register")
def register(
    job: str = typer.Option(..., "--job", help="Completed job whose model to register"),
    name: str = typer.Option(..., "--name", help="Registered model name"),
    version: str = typer.Option(None, "--version", help="Version [default: next number]"),
    description: str = typer.Option("", "--description"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Register a completed job's fine-tuned model (MLflow format) as NAME:VERSION.

    Example: chattune models register --job phi3-ultrachat --name phi3-ultrachat --version 1
    """
    model = get_client(workspace).models.register(job, name, version, description)
    if json:
        print_json(model.to_dict())
        return
    console.print(f"registered [bold]{model.ref}[/] from job {job}  ({model.path})")


@app.command("list")
def list_(
    name: str = typer.Option(None, "--name", help="Only versions of this model"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """List registered model versions.

    Example: chattune models list
    """
    models = get_client(workspace).models.list(name)
    if json:
        print_json([m.to_dict() for m in models])
        return
    table = Table("name", "version", "labels", "base model", "job", "test loss")
    for m in models:
        loss = m.lineage.get("metrics", {}).get("test_loss")
        table.add_row(
            m.name,
            m.version,
            ",".join(m.labels),
            m.base_model or "",
            m.job or "",
            f"{loss:.4f}" if loss is not None else "",
        )
    console.print(table)
