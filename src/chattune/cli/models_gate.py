"""`chattune models compare` and `models promote`: two versions on the same held-out data,
and a label that moves only when the gates hold."""

from __future__ import annotations

import typer
from rich.table import Table

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json


def compare(
    a: str = typer.Argument(..., help="A registered version: NAME:VERSION or NAME@label"),
    b: str = typer.Argument("base", help="Another version, or `base` (A's base model)"),
    data: str = typer.Option(
        None, "--data", help="Held-out chat JSONL (default: A's job's test split)"
    ),
    samples: int = typer.Option(3, "--samples", help="Prompts answered side by side (0: none)"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Evaluate two versions (or a version and its base) on the same held-out conversations:
    loss, perplexity, token accuracy, ROUGE-L, BLEU, answer length, latency and N answers
    side by side; writes report.md/report.html and a figure, also into an MLflow run.

    Example: chattune models compare tiny-chat:1 tiny-chat:2 --samples 3
    """
    result = get_client(workspace).models.compare(a, b, data=data, samples=samples)
    if json:
        print_json(result.to_dict())
        return
    table = Table("metric", *result.models, "better", title=f"data: {result.data}")
    for name in sorted({k for m in result.metrics.values() for k in m}):
        values = [f"{result.metrics[m].get(name, float('nan')):.4g}" for m in result.models]
        table.add_row(name, *values, result.better(name))
    console.print(table)
    for i, sample in enumerate(result.samples, 1):
        console.print(f"[bold]sample {i}[/]: {_short(sample['prompt'])}", highlight=False)
        for key in ("reference", *result.models):
            console.print(f"  {key:>14}: {_short(sample[key])}", markup=False, highlight=False)
    console.print(
        f"report: {result.report_markdown} (and .html); MLflow run {result.mlflow_run_id}"
    )


def promote(
    ref: str = typer.Argument(..., help="The version to promote: NAME:VERSION"),
    label: str = typer.Option(..., "--label", help="The label to move, e.g. production"),
    gate: list[str] = typer.Option(
        None,
        "--gate",
        help='A condition, e.g. "test_loss <= base.test_loss" (repeatable; default: not '
        "worse than the label's holder and better than the base, on test_loss)",
    ),
    force: bool = typer.Option(
        False, "--force", help="Move the label even when a gate fails (a warning in history)"
    ),
    data: str = typer.Option(None, "--data", help="Held-out chat JSONL (default: job's test)"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Move a label to a version only when its compared metrics pass the gates; a refused
    promotion says which gate failed and by how much (exit 1).

    Example: chattune models promote tiny-chat:2 --label production
    """
    result = get_client(workspace).models.promote(ref, label, gate or None, force, data)
    if json:
        print_json(result.to_dict())
        return
    if result.forced:
        console.print(
            f"[yellow]warning[/]: {result.ref} forced to {label!r}: {result.reason()}",
            highlight=False,
        )
    else:
        console.print(f"promoted {result.ref} to {label!r}: {result.reason()}", highlight=False)


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
