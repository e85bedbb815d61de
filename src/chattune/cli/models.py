"""`chattune models`: the foundation catalog and the registry of fine-tuned models."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json
from chattune.errors import ValidationError

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
    name: str = typer.Argument(..., help="Catalog or registered model: NAME, NAME:VERSION"),
    label: str = typer.Option(None, "--label", help="Label to resolve, e.g. latest"),
    version: str = typer.Option(None, "--version", help="Exact version"),
    lineage: bool = typer.Option(
        False, "--lineage", help="Job → base model → data sha256 → parameters → metrics"
    ),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Show a model card (catalog) or a registered model version with its lineage.

    Example: chattune models show Phi-3-mini-4k-instruct --label latest
    Example: chattune models show tiny-chat:1 --lineage --json
    """
    models = get_client(workspace).models
    if ":" in name and not models.is_catalog(name.split(":")[0]):
        name, version = name.split(":", 1)
    if models.is_catalog(name):
        data = models.get(name, label=label, version=version).model_dump()
    elif lineage:
        found = models.show(name, version=version, label=label)
        data = models.lineage(found.name, found.version)
        if json:
            print_json(data)
        else:
            print_lineage({"deployments": [data]})
        return
    else:
        found = models.show(name, version=version, label=label)
        data = found.to_dict() | {"history": models.history(found.name, found.version)}
    if json:
        print_json(data)
        return
    for key, value in data.items():
        if key != "history":
            console.print(f"[bold]{key:16}[/] {value}")
    for event in data.get("history", []):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(event["at"]))
        console.print(f"[bold]{'history':16}[/] {when} {event['kind']}: {event['message']}")


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
    archived: bool = typer.Option(False, "--archived", help="Include archived versions"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """List registered model versions (archived ones only with --archived).

    Example: chattune models list
    """
    models = get_client(workspace).models.list(name, archived=archived)
    if json:
        print_json([m.to_dict() for m in models])
        return
    table = Table("name", "version", "labels", "base model", "job", "test loss")
    for m in models:
        loss = m.lineage.get("metrics", {}).get("test_loss")
        table.add_row(
            m.name,
            m.version,
            ",".join(m.labels + (["archived"] if m.archived else [])),
            m.base_model or "",
            m.job or "",
            f"{loss:.4f}" if loss is not None else "",
        )
    console.print(table)


RefArg = typer.Argument(..., help="Registered model version, NAME:VERSION")


@app.command("label")
def label(
    ref: str = RefArg,
    name: str = typer.Argument(..., help="Label, e.g. prod (moves from the version that had it)"),
    workspace: str = WorkspaceOpt,
) -> None:
    """Put a label on a version (an MLflow alias too); `latest` moves on each register.

    Example: chattune models label tiny-chat:1 prod
    """
    model = get_client(workspace).models.label(*_split(ref), name)
    console.print(f"{model.ref} labels: {', '.join(model.labels)}")


@app.command("unlabel")
def unlabel(
    ref: str = RefArg,
    name: str = typer.Argument(..., help="Label to take off"),
    workspace: str = WorkspaceOpt,
) -> None:
    """Take a label off a version.

    Example: chattune models unlabel tiny-chat:1 prod
    """
    model = get_client(workspace).models.unlabel(*_split(ref), name)
    console.print(f"{model.ref} labels: {', '.join(model.labels) or 'none'}")


@app.command("archive")
def archive(
    ref: str = RefArg,
    restore: bool = typer.Option(False, "--restore", help="Show it in lists again"),
    workspace: str = WorkspaceOpt,
) -> None:
    """Hide a version from lists; it stays deployable by its explicit version.

    Example: chattune models archive tiny-chat:1
    """
    model = get_client(workspace).models.archive(*_split(ref), archived=not restore)
    console.print(f"{model.ref} {'archived' if model.archived else 'restored'}")


@app.command("delete")
def delete(ref: str = RefArg, workspace: str = WorkspaceOpt) -> None:
    """Delete a version and its files (refused while a deployment serves it).

    Example: chattune models delete tiny-chat:1
    """
    get_client(workspace).models.delete(*_split(ref))
    console.print(f"deleted {ref}")


@app.command("export")
def export(
    ref: str = RefArg,
    fmt: str = typer.Option(..., "--format", help="merged | adapter | gguf"),
    to: str = typer.Option(..., "--to", help="New (or empty) folder to write"),
    gguf_type: str = typer.Option("f16", "--type", help="GGUF tensor type: f16 or q8_0"),
    workspace: str = WorkspaceOpt,
) -> None:
    """Export a version: a safetensors folder, its PEFT adapter, or GGUF + Ollama Modelfile.

    Example: chattune models export tiny-chat:1 --format gguf --to tiny-chat-gguf
    (then: ollama create tiny-chat -f tiny-chat-gguf/Modelfile)
    """
    out = get_client(workspace).models.export(*_split(ref), fmt, to, gguf_type)
    for path in sorted(out.iterdir()):
        typer.echo(f"wrote {path}")  # plain: paths must not wrap


def _split(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition(":")
    if not sep or not name or not version:
        raise ValidationError(
            f"model reference {ref!r} has no version", "write NAME:VERSION, e.g. tiny-chat:1"
        )
    return name, version


def print_parents(parent: dict[str, Any] | None, depth: int = 2) -> None:
    """A registered base model's own lineage (an SFT model a DPO job started from)."""
    while parent:
        pad = "  " * depth
        console.print(f"{pad}[bold]parent[/] {parent['model']['ref']}  job {parent['job']['name']}")
        base = parent["base_model"]
        console.print(f"{pad}  [bold]base model[/] {base['name']} ({base['source']})")
        for item in parent["data"]:
            console.print(f"{pad}  [bold]data.{item['split']}[/] sha256 {item['sha256']}")
        parent, depth = parent.get("parent"), depth + 1


def print_lineage(found: dict[str, Any]) -> None:
    """Lineage as indented lines: deployment → model → job → base → data → params → metrics."""
    if "endpoint" in found:
        console.print(f"[bold]endpoint[/] {found['endpoint']}")
    for d in found["deployments"]:
        if "deployment" in d:
            console.print(f"[bold]deployment[/] {d['deployment']} ({d['traffic']}% traffic)")
        model = d.get("model", {})
        console.print(f"  [bold]model[/] {model.get('ref')}  labels: {model.get('labels')}")
        if "job" not in d:
            continue
        console.print(f"  [bold]job[/] {d['job']['name']}  run: {d['job']['mlflow_run_id']}")
        base = d["base_model"]
        console.print(f"  [bold]base model[/] {base['name']} v{base['version']} ({base['source']})")
        print_parents(d.get("parent"))
        for item in d["data"]:
            console.print(
                f"  [bold]data.{item['split']}[/] {item['path']}  sha256 {item['sha256']}"
            )
        params = ", ".join(f"{k}={v}" for k, v in d["parameters"].items())
        console.print(f"  [bold]parameters[/] {params}")
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in d["metrics"].items())
        console.print(f"  [bold]metrics[/] {metrics}")


def _register_gate_commands() -> None:
    from chattune.cli import models_gate

    app.command("compare")(models_gate.compare)
    app.command("promote")(models_gate.promote)


_register_gate_commands()
