"""`chattune data`: download, validate and show chat data (thin: parse, call the SDK, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from chattune.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    err_console,
    get_client,
    print_json,
)

app = typer.Typer(
    help="Chat data: download a sample of a dataset, validate, convert and show a file.\n\n"
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
    sample: str = typer.Option(
        "random",
        "--sample",
        help="random: a seeded shuffle of each split (spans the whole split); first: the head "
        "of each split (as the reference script's split[:N%]).",
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the shuffle (--sample random)."),
    workspace: str | None = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write SPLIT_PC percent of each split as train_sft/test_sft/train_gen/test_gen.jsonl.

    OUT/.manifest.json records the source, percent, sampling, seed, and each file's rows and
    sha256.

    Example: chattune data download ultrachat-sample --split-pc 5 --out data/

    The head of each split: chattune data download ultrachat-sample --split-pc 5 --out data/
    --sample first

    With the hub: chattune data download HuggingFaceH4/ultrachat_200k --split-pc 5 --out data/
    """
    from rich.table import Table

    info = get_client(workspace).data.download(source, split_pc, out, seed=seed, sample=sample)
    if as_json:
        print_json({split: {**vars(i), "path": str(i.path)} for split, i in info.items()})
        return
    how = f"seed {seed}" if sample == "random" else "head of each split"
    table = Table(title=f"{source} → {out} ({split_pc:g}% per split, {how})")
    for column in ("split", "rows", "of", "file"):
        table.add_column(column, justify="right" if column in ("rows", "of") else "left")
    for split, i in info.items():
        table.add_row(split, str(i.rows), f"{i.source_rows} ({i.source_split})", str(i.path))
    console.print(table)


FormatOpt = typer.Option(
    None,
    "--from",
    help="Row format: messages, sharegpt, alpaca or prompt_completion (default: detected).",
)
RoleMapOpt = typer.Option(
    None,
    "--role-map",
    help="ShareGPT roles, FROM=ROLE, repeatable (e.g. --role-map bot=assistant).",
)


def _role_map(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or value not in ("system", "user", "assistant"):
            raise typer.BadParameter(
                f"{pair!r}: expected FROM=ROLE with ROLE system, user or assistant",
                param_hint="--role-map",
            )
        mapping[key] = value
    return mapping


EXIT_PROBLEMS = 3
EXIT_UNREADABLE = 2


@app.command()
def validate(
    file: Path = typer.Argument(..., help="Data file (jsonl/json/parquet/csv) or dataset folder."),
    split: str | None = typer.Option(None, "--split", help="Split of a dataset folder."),
    max_errors: int = typer.Option(
        50, "--max-errors", help="Problems to print on the terminal; 0 prints all."
    ),
    drop_invalid: Path | None = typer.Option(
        None,
        "--drop-invalid",
        help="Write the valid rows to this file and the rejected ones, with their reasons, "
        "to <file>.rejects.jsonl.",
    ),
    fmt: str | None = FormatOpt,
    role_map: list[str] | None = RoleMapOpt,
    workspace: str | None = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check every row against the chat rules and report every problem.

    Prints a summary by problem kind, then the problems (the first 50 unless --max-errors).
    --json prints the full report (every problem with file, line, field and message), on
    success and on failure. Warnings (a user turn after the last assistant turn) do not fail.

    Exit codes: 0 no errors; 3 rows with problems; 2 input unreadable (missing path,
    unsupported file type, a file that is not JSON / parquet / CSV as a whole).

    Example: chattune data validate data/train_sft.jsonl --max-errors 0

    Keep the good rows: chattune data validate raw.jsonl --drop-invalid clean.jsonl
    """
    report = get_client(workspace).data.validate(
        file, split, fmt=fmt, role_map=_role_map(role_map), drop_invalid=drop_invalid, check=False
    )
    if as_json:
        print_json(report)
    else:
        _print_report(report, str(file), max_errors)
    if report["unreadable"]:
        raise typer.Exit(EXIT_UNREADABLE)
    if not report["ok"]:
        raise typer.Exit(EXIT_PROBLEMS)


def _print_report(report: dict[str, Any], file: str, max_errors: int) -> None:
    from rich.markup import escape

    out = err_console if not report["ok"] else console
    counts = (
        f"{report['rows']} rows ({report['format'] or 'no'} format), "
        f"{report['valid_rows']} valid, {report['invalid_rows']} invalid"
    )
    if report["ok"]:
        console.print(
            f"[green]ok[/]: {escape(file)}: {counts}; {report['messages']} messages, "
            f"{report['assistant_turns']} assistant turns, "
            f"{report['rows_with_system']} with a system message",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(
            f"[red]error[/]: {escape(file)}: {counts}; {report['errors']} errors",
            highlight=False,
            soft_wrap=True,
        )
    if report["summary"]:
        summary = ", ".join(f"{kind} {n}" for kind, n in report["summary"].items())
        out.print(f"problems by kind: {summary}", highlight=False, soft_wrap=True)
    problems = report["problems"]
    shown = problems if max_errors <= 0 else problems[:max_errors]
    for p in shown:
        out.print(f"{p['severity']}: {escape(p['text'])}", highlight=False, soft_wrap=True)
    if len(shown) < len(problems):
        rest = len(problems) - len(shown)
        out.print(f"… and {rest} more (--max-errors 0 shows all, --json lists all)")
    if "drop_invalid" in report:
        d = report["drop_invalid"]
        console.print(
            f"wrote {report['valid_rows']} valid rows to {escape(d['valid'])}, "
            f"{report['invalid_rows']} rejected to {escape(d['rejects'])}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def convert(
    src: Path = typer.Argument(
        ..., help="Data file: messages, ShareGPT, Alpaca or prompt/completion."
    ),
    out: Path = typer.Argument(..., help="Output JSONL file of ultrachat rows (messages)."),
    fmt: str | None = FormatOpt,
    role_map: list[str] | None = RoleMapOpt,
    workspace: str | None = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write SRC as ``{"prompt", "prompt_id", "messages"}`` JSON lines (the job's own format).

    All rows must be valid (see `data validate --drop-invalid` to split off bad ones); OUT is
    written through a temporary file, so a failed run leaves no partial OUT.

    Example: chattune data convert alpaca_en_demo.json train.jsonl

    ShareGPT with other role names: chattune data convert sg.json out.jsonl --role-map bot=assistant
    """
    result = get_client(workspace).data.convert(src, out, fmt=fmt, role_map=_role_map(role_map))
    if as_json:
        print_json(result)
        return
    console.print(
        f"wrote {result['rows']} rows ({result['format']} → messages) to {out}",
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
    console.print(_stats_table(result["stats"], f"{file} ({result['format']} format)"))
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
