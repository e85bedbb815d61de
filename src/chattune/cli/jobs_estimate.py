"""How `chattune jobs` prints a pre-flight estimate and a job's predicted vs actual figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from chattune.cli.common import console

if TYPE_CHECKING:
    from chattune.jobs.preflight import Estimate


def run_estimate(client: Any, file: str, overrides: dict[str, Any] | None, json: bool) -> None:
    """``jobs create --estimate``: the estimate, printed or as JSON."""
    from chattune.cli.common import print_json

    found = client.jobs.estimate(file, overrides=overrides)
    if json:
        print_json(found.to_dict())
    else:
        print_estimate(found)


def print_estimate(est: Estimate) -> None:
    """Steps, time per stage and in all, peak memory, tokens/s and the fit."""
    console.print(
        f"job [bold]{est.job}[/] (estimate: nothing started), model {est.model} on "
        f"{est.compute}; calibrated in {est.calibration_seconds:.0f}s"
        + (f", corrected by {est.history} earlier jobs of this shape" if est.history else "")
    )
    rows = ", ".join(f"{k} {v}" for k, v in est.rows.items())
    console.print(
        f"  steps: {est.steps_per_epoch} per epoch, {est.total_steps} in all; "
        f"{est.seconds_per_step:.2f} s/step, {est.tokens_per_second:,.0f} tokens/s ({rows} rows)"
    )
    table = Table("stage", "predicted", title="predicted wall time")
    for stage, seconds in est.stages.items():
        table.add_row(stage, _duration(seconds))
    table.add_row("[bold]total[/]", f"[bold]{_duration(est.total_seconds)}[/]")
    console.print(table)
    if est.cpu_stages:
        cpu = sum(est.cpu_stages.values())
        console.print(f"  CPU time: {_duration(cpu)} (wall time on a machine to itself, per core)")
    gpu = f", GPU {est.gpu_gb:.2f} GB" if est.gpu_gb else ""
    verdict = "[green]fits[/]" if est.fits else "[red]does not fit[/]"
    console.print(
        f"  peak memory: RSS {est.peak_rss_gb:.2f} GB{gpu}; {est.room_gb} GB here: {verdict}"
    )
    if est.suggestions:
        console.print("  would fit: " + "; or ".join(est.suggestions), markup=False)


def print_resources(found: dict[str, Any]) -> None:
    """Predicted beside actual time per stage and peak memory (``jobs show``)."""
    predicted, actual = found.get("predicted") or {}, found.get("actual") or {}
    if not predicted and not actual:
        return
    table = Table("", "predicted", "actual", "error", title="resources")
    p_stages, a_stages = predicted.get("stages", {}), actual.get("stages", {})
    order = ["setup", "validate", "model_import", "preprocess", "finetune", "evaluate", "package"]
    for stage in sorted({*p_stages, *a_stages}, key=lambda k: order.index(k) if k in order else 99):
        table.add_row(stage, *_pair(p_stages.get(stage), a_stages.get(stage), _duration))
    table.add_row(
        "total", *_pair(predicted.get("total_seconds"), actual.get("total_seconds"), _duration)
    )
    table.add_row(
        "CPU time",
        *_pair(predicted.get("cpu_seconds"), actual.get("cpu_seconds"), _duration),
    )
    table.add_row(
        "peak RSS",
        *_pair(predicted.get("peak_rss_gb"), actual.get("peak_rss_gb"), lambda v: f"{v:.2f} GB"),
    )
    console.print(table)
    if not predicted:
        console.print("  no prediction: `chattune jobs create -f FILE --estimate` first")


def _pair(p: float | None, a: float | None, fmt: Any) -> tuple[str, str, str]:
    error = f"{(p - a) / a:+.0%}" if p is not None and a else ""
    return (fmt(p) if p is not None else "", fmt(a) if a is not None else "", error)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"
