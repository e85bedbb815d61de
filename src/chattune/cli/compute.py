"""`chattune compute`: this machine's compute, and whether a model fits it."""

from __future__ import annotations

import typer

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json

app = typer.Typer(
    help="Compute targets (local, ray): where jobs run; whether a model fits.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Target name, used as `compute: NAME` in a job spec"),
    type: str = typer.Option("ray", "--type", help="local or ray"),
    address: str = typer.Option(None, "--address", help="Ray Jobs API, http://HEAD:8265"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Define a compute target; a ray target is checked to answer first.

    Example: chattune compute create ray-local --type ray --address http://127.0.0.1:8265
    """
    target = get_client(workspace).compute.create(name, type=type, address=address)
    if json:
        print_json(target.to_dict())
        return
    console.print(f"compute target [bold]{target.name}[/] ({target.type} {target.address})")


@app.command("list")
def list_(workspace: str = WorkspaceOpt, json: bool = JsonOpt) -> None:
    """The workspace's compute targets (``local`` is built in).

    Example: chattune compute list
    """
    targets = get_client(workspace).compute.list()
    if json:
        print_json([t.to_dict() for t in targets])
        return
    for t in targets:
        console.print(f"{t.name:24} {t.type:6} {t.address or ''}")


@app.command("delete")
def delete(name: str, workspace: str = WorkspaceOpt) -> None:
    """Forget a compute target.

    Example: chattune compute delete ray-local
    """
    get_client(workspace).compute.delete(name)
    console.print(f"compute target {name} deleted")


@app.command("show")
def show(
    name: str = typer.Argument("local", help="Target name"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """What a target has: CPU cores, memory and GPUs of this machine, or the Ray cluster's.

    Example: chattune compute show
    """
    info = get_client(workspace).compute.status(name)
    if json or info.get("type") == "ray":
        print_json(info)
        return
    console.print(
        f"local ({info['kind']}): {info['cpu_cores']} CPU cores, "
        f"{info['memory_gb']} GB memory ({info['memory_available_gb']} GB free)"
    )
    for gpu in info["gpus"]:
        console.print(f"  GPU {gpu['index']}: {gpu['name']}, {gpu['memory_gb']} GB")


@app.command("check")
def check(
    model: str = typer.Option(..., "--model", help="Catalog model, folder or hf://org/id"),
    method: str = typer.Option("lora", "--method", help="lora or full"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Estimate training memory for MODEL with METHOD and check it against this machine.

    Example: chattune compute check --model SmolLM2-135M-Instruct --method lora
    """
    if method not in ("lora", "full"):
        from chattune.errors import ValidationError

        raise ValidationError(f"--method {method!r} is not known", "use lora or full")
    result = get_client(workspace).compute.check(model, method)
    if json:
        print_json(result)
    else:
        verdict = "[green]fits[/]" if result["ok"] else "[red]does not fit[/]"
        console.print(
            f"{result['model']} ({method}) on {result['compute']}: {verdict}; "
            f"needs ~{result['estimated_memory_gb']} GB, {result['available_gb']} GB there"
        )
        for reason in result["reasons"]:
            console.print(f"  - {reason}")
    if not result["ok"]:
        raise typer.Exit(1)
