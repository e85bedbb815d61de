"""`chattune compute`: this machine's compute, and whether a model fits it."""

from __future__ import annotations

import typer

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json

app = typer.Typer(
    help="Compute: what this machine has; whether a model fits it.", no_args_is_help=True
)


@app.command("show")
def show(workspace: str = WorkspaceOpt, json: bool = JsonOpt) -> None:
    """CPU cores, memory and GPUs of the local compute.

    Example: chattune compute show
    """
    info = get_client(workspace).compute.show()
    if json:
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
