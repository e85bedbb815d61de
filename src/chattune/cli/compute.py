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
    lora_r: int = typer.Option(None, "--lora-r", help="LoRA rank [8]"),
    target_modules: str = typer.Option(
        None, "--lora-target-modules", help="Comma-separated LoRA targets [model card, else all]"
    ),
    precision: str = typer.Option(None, "--precision", help="32, 16 or bf16 [32]"),
    batch: int = typer.Option(None, "--batch-size", help="per_device_train_batch_size [1]"),
    max_seq_length: int = typer.Option(
        None, "--max-seq-length", help="Tokens per row [model card, else the model maximum]"
    ),
    optim: str = typer.Option(None, "--optim", help="adamw_torch or adafactor [adamw_torch]"),
    processes: int = typer.Option(None, "--processes", help="Training processes per node [1]"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Estimate training memory (weights, gradients, optimizer, activations) for MODEL and
    check it against this machine; the job's validate stage runs the same check.

    Options left out take the model card's defaults, then the job defaults. Exits 1 when it
    does not fit, naming what would.

    Example: chattune compute check --model SmolLM2-135M-Instruct --method lora --lora-r 16
    """
    if method not in ("lora", "full"):
        from chattune.errors import ValidationError

        raise ValidationError(f"--method {method!r} is not known", "use lora or full")
    given = {
        "lora_r": lora_r,
        "lora_target_modules": target_modules.split(",") if target_modules else None,
        "precision": precision,
        "per_device_train_batch_size": batch,
        "max_seq_length": max_seq_length,
        "optim": optim,
        "processes": processes,
    }
    params = {k: v for k, v in given.items() if v is not None}
    result = get_client(workspace).compute.check(model, method, **params)
    if json:
        print_json(result)
    else:
        _print_check(result)
    if not result["ok"]:
        raise typer.Exit(1)


def _print_check(result: dict[str, object]) -> None:
    verdict = "[green]fits[/]" if result["ok"] else "[red]does not fit[/]"
    p = result["parameters"]
    assert isinstance(p, dict)
    how = f"LoRA r={p['lora_r']}" if p["apply_lora"] else "full"
    console.print(
        f"{result['model']} ({how}, precision {p['precision']}, batch "
        f"{p['per_device_train_batch_size']} x {result['seq_length']} tokens) on "
        f"{result['compute']}: {verdict}; needs ~{result['estimated_memory_gb']} GB, "
        f"{result['available_gb']} GB there"
    )
    parts = result["breakdown_gb"]
    assert isinstance(parts, dict)
    console.print("  " + ", ".join(f"{k} {v} GB" for k, v in parts.items()))
    reasons, changes = result["reasons"], result["would_fit"]
    assert isinstance(reasons, list) and isinstance(changes, list)
    for reason in reasons:
        console.print(f"  - {reason}")
    for change in changes:
        console.print(f"  would fit: {change}")
