"""`chattune endpoints mirror-pairs` (opt in to keeping mirrored answers) and
`chattune endpoints compare` (live vs mirror: latency, errors, agreement, a sample)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json


def mirror_pairs(
    name: str,
    keep: int = typer.Option(
        ..., "--keep", help="Most pairs kept (oldest dropped first); 0 turns keeping off"
    ),
    days: float = typer.Option(7.0, "--days", help="Pairs older than this are dropped"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Opt in to keeping, for each mirrored request, the live and the mirror answer with
    their latencies (in the workspace; nothing is kept without this).

    Example: chattune endpoints mirror-pairs my-ep --keep 500 --days 7
    """
    found = get_client(workspace).endpoints.keep_mirror_pairs(name, keep, days)
    if json:
        print_json(found)
    elif found["keep"]:
        console.print(f"endpoint {name}: keeping up to {keep} mirror pairs for {days:g} days")
    else:
        console.print(f"endpoint {name}: mirror pairs are not kept")


def compare(
    name: str,
    samples: int = typer.Option(3, "--samples", help="Newest pairs shown side by side"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Live vs mirror deployment over the kept mirror pairs: latency percentiles, error
    rates, answer agreement (exact and ROUGE-L) and a sample.

    Example: chattune endpoints compare my-ep
    """
    found = get_client(workspace).endpoints.compare(name, samples)
    if json:
        print_json(found)
        return
    print_comparison(name, found)


def print_comparison(name: str, found: dict[str, Any]) -> None:
    if found["settings"] is None and not found["pairs"]:
        console.print(
            f"endpoint {name}: no mirror pairs kept; opt in with "
            f"`chattune endpoints mirror-pairs {name} --keep 500`"
        )
        return
    live, mirror = found["live"], found["mirror"]
    table = Table("", "live", "mirror", title=f"{found['pairs']} mirrored requests")
    table.add_row("deployment", ", ".join(live["deployments"]), ", ".join(mirror["deployments"]))
    for q in ("p50", "p90", "p99"):
        table.add_row(f"latency {q}", _s(live["latency_s"][q]), _s(mirror["latency_s"][q]))
    table.add_row("error rate", _pct(live["error_rate"]), _pct(mirror["error_rate"]))
    console.print(table)
    agree = found["agreement"]
    rouge = "-" if agree["rouge_l"] is None else f"{agree['rouge_l']:.3f}"
    console.print(
        f"agreement over {int(agree['compared'])} pairs both answered: exact "
        f"{_pct(agree['exact'])}, ROUGE-L {rouge}"
    )
    for i, pair in enumerate(found["samples"], 1):
        console.print(f"[bold]sample {i}[/]")
        console.print(f"    live: {_short(pair['live'])}", markup=False, highlight=False)
        console.print(f"  mirror: {_short(pair['mirror'])}", markup=False, highlight=False)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
