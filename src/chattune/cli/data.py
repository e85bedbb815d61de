"""`chattune data`: download, validate and show chat data (thin: parse, call the SDK, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json

app = typer.Typer(
    help="Chat data: download a sample of a dataset, validate a file, show its stats.\n\n"
    "Example: chattune data download ultrachat-sample --split-pc 5 --out data/",
    no_args_is_help=True,
)

PREVIEW_CHARS = 600


@app.command()
def download(
    source: str = typer.Argument(
        ..., help="ultrachat-sample (offline), a dataset folder in hub layout, or a hub id."
    ),
    split_pc: float = typer.Option(..., "--split-pc", help="Percent of each split to keep."),
    out: Path = typer.Option(..., "--out", help="Folder for the four JSONL files."),
    seed: int = typer.Option(42, "--seed", help="Seed of the shuffle that picks the rows."),
    workspace: str | None = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write SPLIT_PC percent of each split as train_sft/test_sft/train_gen/test_gen.jsonl.

    Example: chattune data download ultrachat-sample --split-pc 5 --out data/

    With the hub: chattune data download HuggingFaceH4/ultrachat_200k --split-pc 5 --out data/
    """
    from rich.table import Table

    info = get_client(workspace).data.download(source, split_pc, out, seed=seed)
    if as_json:
        print_json({split: {**vars(i), "path": str(i.path)} for split, i in info.items()})
        return
    table = Table(title=f"{source} → {out} ({split_pc:g}% per split, seed {seed})")
    for column in ("split", "rows", "of", "file"):
        table.add_column(column, justify="right" if column in ("rows", "of") else "left")
    for split, i in info.items():
        table.add_row(split, str(i.rows), f"{i.source_rows} ({i.source_split})", str(i.path))
    console.print(table)


@app.command()
def validate(
    file: Path = typer.Argument(..., help="Data file (jsonl/json/parquet/csv) or dataset folder."),
    split: str | None = typer.Option(None, "--split", help="Split of a dataset folder."),
    workspace: str | None = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check every row against the chat rules; exits non-zero naming each bad row.

    Example: chattune data validate data/train_sft.jsonl
    """
    report = get_client(workspace).data.validate(file, split)
    if as_json:
        print_json(report)
        return
    console.print(
        f"[green]ok[/]: {file}: {report['rows']} conversations, {report['messages']} messages, "
        f"{report['assistant_turns']} assistant turns, "
        f"{report['rows_with_system']} with a system message",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def show(
    file: Path = typer.Argument(..., help="Data file (jsonl/json/parquet/csv) or dataset folder."),
    n: int = typer.Option(3, "-n", help="How many conversations to print."),
    model: str | None = typer.Option(
        None, "--model", help="Model folder or offline model name: count tokens with its template."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write a length histogram PNG here."),
    split: str | None = typer.Option(None, "--split", help="Split of a dataset folder."),
    workspace: str | None = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Stats (rows, turns, lengths, roles, duplicates) and the first N conversations.

    Example: chattune data show data/train_sft.jsonl -n 2 --model SmolLM2-135M-Instruct

    With a plot: chattune data show data/train_sft.jsonl --plot lengths.png
    """
    result = get_client(workspace).data.show(file, n=n, model_dir=model, split=split, plot=plot)
    if as_json:
        print_json(result)
        return
    console.print(_stats_table(result["stats"], str(file)))
    stats = result["stats"]
    if stats.get("system_folded"):
        console.print(
            f"note: {model}'s chat template drops system messages; {stats['system_folded']} rows "
            "will have their system text folded into the first user turn",
            style="yellow",
            highlight=False,
        )
    for index, messages in enumerate(result["conversations"], start=1):
        _print_conversation(index, messages)


def _stats_table(stats: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("stat")
    table.add_column("value", justify="right")

    def spread(key: str) -> str:
        s = stats[key]
        text = f"{s['min']} / {s['mean']} / {s['max']}"
        return f"{text} (total {s['total']})" if "total" in s else text

    table.add_row("rows", str(stats["rows"]))
    table.add_row("turns min / mean / max", spread("turns"))
    table.add_row("chars min / mean / max", spread("chars"))
    if "tokens" in stats:
        table.add_row("tokens min / mean / max", spread("tokens"))
        if "over_max_length" in stats["tokens"]:
            limit = stats["tokens"]["model_max_length"]
            table.add_row(f"rows over {limit} tokens", str(stats["tokens"]["over_max_length"]))
    roles = stats["roles"]
    table.add_row(
        "messages system / user / assistant",
        f"{roles['system']} / {roles['user']} / {roles['assistant']}",
    )
    table.add_row("rows with a system message", f"{stats['system_share']:.1%}")
    table.add_row("duplicate prompt_ids", str(stats["duplicate_prompt_ids"]))
    if "system_folded" in stats:
        table.add_row("system folded into user", str(stats["system_folded"]))
    if "plot" in stats:
        table.add_row("plot", stats["plot"])
    return table


def _print_conversation(index: int, messages: list[dict[str, str]]) -> None:
    from rich.markup import escape

    colours = {"system": "magenta", "user": "cyan", "assistant": "green"}
    console.rule(f"conversation {index}")
    for m in messages:
        content = m["content"]
        if len(content) > PREVIEW_CHARS:
            content = content[:PREVIEW_CHARS] + f" … (+{len(m['content']) - PREVIEW_CHARS} chars)"
        role = f"[bold {colours[m['role']]}]{m['role']}[/]"
        console.print(f"{role}: {escape(content)}", highlight=False)
