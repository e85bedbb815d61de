"""`chattune jobs`: create a fine-tuning pipeline job, follow it, read its metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from chattune.cli.common import JsonOpt, WorkspaceOpt, console, get_client, print_json

if TYPE_CHECKING:
    from chattune.jobs.plan import Plan
    from chattune.store.jobs import Job

app = typer.Typer(
    help="Fine-tuning pipeline jobs: validate → model_import → preprocess → "
    "finetune → evaluate → package.",
    no_args_is_help=True,
)

ESTIMATE_HELP = (
    "Run the real stages on a slice of the data; print steps, time per stage, peak memory "
    "and fit; start nothing"
)
_STYLE = {"completed": "green", "failed": "red", "canceled": "yellow", "running": "cyan"}


@app.command("create")
def create(
    file: str = typer.Option(..., "--file", "-f", help="Job spec YAML (see examples/job.yaml)"),
    name: str = typer.Option(None, "--name", help="Override the spec's name"),
    stream: bool = typer.Option(False, "--stream", help="Follow the job after creating it"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the effective parameters and stage plan; start nothing"
    ),
    estimate: bool = typer.Option(False, "--estimate", help=ESTIMATE_HELP),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Validate the spec and start the job in its own process; prints the job name at once.

    The job outlives the terminal. The spec's `parameters:` take these names (defaults,
    ranges and meaning: `--dry-run` prints each effective value and its source;
    docs/reference/parameters.md describes each):
    training: num_train_epochs, max_steps, per_device_train_batch_size,
    per_device_eval_batch_size, gradient_accumulation_steps, learning_rate,
    lr_scheduler_type, warmup_steps, optim, weight_decay, adam_beta1, adam_beta2,
    adam_epsilon, max_grad_norm, precision, seed, max_seq_length, packing;
    evaluation and checkpoints: evaluation_strategy, eval_steps, logging_steps, save_steps,
    save_total_limit, metric_for_best_model, apply_early_stopping, early_stopping_patience,
    early_stopping_threshold, resume_from_checkpoint, generation_eval_rows,
    generation_max_new_tokens;
    LoRA: apply_lora, lora_r, lora_alpha, lora_dropout, lora_target_modules,
    merge_lora_weights;
    processes: apply_deepspeed, deepspeed_stage, fsdp, fsdp_sharding,
    number_of_gpu_to_use_finetuning, num_nodes_finetune, processes, rendezvous_endpoint;
    preference tuning, for method dpo: beta, loss_type, max_prompt_length,
    precompute_reference.
    The validate stage refuses a job whose memory estimate (`chattune compute check`) does
    not fit this machine. The spec's `compute:` must name a target (`chattune compute list`).

    The job's spec.yaml records every effective parameter and its source (spec, model card
    or default); --dry-run prints the same without starting anything. --estimate runs the
    real stages on a slice of the data (under a minute for a small model) and predicts the
    job's steps, time per stage, peak memory and fit; the job then created from the same
    spec records that prediction beside what it really took (`jobs show`).

    Example: chattune jobs create -f examples/job.yaml --dry-run
    """
    client = get_client(workspace)
    overrides = {"name": name} if name else None
    if dry_run:
        _print_plan(client.jobs.plan(file, overrides=overrides), json)
        return
    if estimate:
        from chattune.cli.jobs_estimate import run_estimate

        return run_estimate(client, file, overrides, json)
    job = client.jobs.create(file, overrides=overrides)
    if json:
        print_json(job_dict(job))
    else:
        console.print(
            f"created job [bold]{job.name}[/] ({_where(job)}); "
            f"follow it with: chattune jobs stream {job.name}"
        )
    if stream:
        _stream(client, job.name)


def _print_plan(plan: Plan, json: bool) -> None:
    if json:
        print_json(plan.to_dict())
        return
    console.print(f"job [bold]{plan.name}[/] (dry run: nothing started), model {plan.model}")
    table = Table("parameter", "value", "source", title="effective parameters")
    for key, entry in plan.parameters.items():
        source = entry["source"]
        shown = source if source == "default" else f"[bold]{source}[/]"
        table.add_row(key, str(entry["value"]), shown)
    console.print(table)
    stages = Table("stage", "cache key", "would", title="pipeline")
    for stage in plan.stages:
        stages.add_row(stage.name, stage.cache_key, stage.action)
    console.print(stages)


@app.command("stream")
def stream(name: str, workspace: str = WorkspaceOpt) -> None:
    """Follow a job's log until it reaches a final status (exit 1 unless completed).

    Example: chattune jobs stream phi3-ultrachat
    """
    _stream(get_client(workspace), name)


@app.command("show")
def show(
    name: str,
    metrics: bool = typer.Option(
        False, "--metrics", help="Evaluation report (base vs fine-tuned), metrics, loss curve"
    ),
    plot: str = typer.Option(None, "--plot", help="Where to save the loss curve PNG"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Show a job's status and stages; with --metrics its evaluation report (loss,
    perplexity, token accuracy, ROUGE-L, BLEU for base and fine-tuned; three answers side by
    side), its MLflow metrics and loss curve.

    Example: chattune jobs show phi3-ultrachat --metrics
    """
    client = get_client(workspace)
    job = client.jobs.get(name)
    data: dict[str, Any] = job_dict(job)
    data["resources"] = client.jobs.resources(name)
    if metrics:
        target = plot or str(client.workspace.job_dir(name) / "loss.png")
        data["metrics"] = client.jobs.metrics(name, plot=target)
    if json:
        print_json(data)
        return
    print_job(job)
    from chattune.cli.jobs_estimate import print_resources

    print_resources(data["resources"])
    if metrics:
        print_metrics(data["metrics"])


def print_metrics(metrics: dict[str, Any]) -> None:
    """The evaluation report (base vs fine-tuned, sample answers), then training metrics."""
    report = metrics.get("report")
    shown: set[str] = set()
    if report:
        table = Table("metric", "base", "fine-tuned", "change", title="evaluation")
        for name, row in report["metrics"].items():
            change = row["fine_tuned"] - row["base"]
            table.add_row(name, f"{row['base']:.4f}", f"{row['fine_tuned']:.4f}", f"{change:+.4f}")
        console.print(table)
        gen = report.get("generation") or {}
        if gen.get("rows"):
            console.print(
                f"rouge_l and bleu: {gen['rows']} prompts from {gen['split']}, greedy, "
                f"≤ {gen['max_new_tokens']} new tokens"
            )
        for i, sample in enumerate(report.get("samples", []), 1):
            console.print(f"[bold]sample {i}[/]: {_short(sample['prompt'])}", highlight=False)
            for key, label in (
                ("reference", "reference"),
                ("base", "base"),
                ("fine_tuned", "fine-tuned"),
            ):
                console.print(
                    f"  {label:>10}: {_short(sample[key])}", markup=False, highlight=False
                )
        shown = {k for k in metrics["final"] if k.split("_")[0] in ("test", "gen", "base")}
    table = Table("metric", "value", title="training" if report else None)
    for key, value in sorted(metrics["final"].items()):
        if key not in shown:
            table.add_row(key, f"{value:.6g}")
    console.print(table)
    console.print(f"loss curve: {metrics['plot']}")
    if metrics.get("report_markdown"):
        console.print(f"report: {metrics['report_markdown']}")


def _short(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@app.command("list")
def list_(workspace: str = WorkspaceOpt, json: bool = JsonOpt) -> None:
    """List jobs, newest first; queued local jobs show their place in the queue (#1 runs
    next: the local compute runs one job at a time, in submission order).

    Example: chattune jobs list
    """
    jobs = get_client(workspace).jobs.list()
    if json:
        print_json([job_dict(j) for j in jobs])
        return
    table = Table()
    table.add_column("name", no_wrap=True)
    for column in ("status", "queue", "model", "created", "current stage"):
        table.add_column(column)
    for j in jobs:
        current = next((s.name for s in j.stages if s.status == "running"), "")
        table.add_row(
            j.name,
            _status(j.status),
            f"#{j.queue_position}" if j.queue_position else "",
            j.spec.get("model", ""),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created_at)),
            current,
        )
    console.print(table)


@app.command("cancel")
def cancel(name: str, workspace: str = WorkspaceOpt) -> None:
    """Stop a running job (it can be resumed later).

    Example: chattune jobs cancel phi3-ultrachat
    """
    job = get_client(workspace).jobs.cancel(name)
    console.print(f"job {name}: {_status(job.status)}")


@app.command("resume")
def resume(
    name: str,
    stream: bool = typer.Option(False, "--stream", help="Follow the job after resuming it"),
    workspace: str = WorkspaceOpt,
) -> None:
    """Run a failed or canceled job again: finished stages are reused, training resumes.

    Example: chattune jobs resume phi3-ultrachat --stream
    """
    client = get_client(workspace)
    job = client.jobs.resume(name)
    console.print(f"resumed job [bold]{job.name}[/] ({_where(job)})")
    if stream:
        _stream(client, name)


@app.command("logs")
def logs(name: str, workspace: str = WorkspaceOpt) -> None:
    """Print a job's full log.

    Example: chattune jobs logs phi3-ultrachat
    """
    typer.echo(get_client(workspace).jobs.logs(name), nl=False)


def _stream(client: Any, name: str) -> None:
    job = client.jobs.stream(
        name, on_line=lambda line: console.print(line, markup=False, highlight=False)
    )
    print_job(job)
    if job.status != "completed":
        raise typer.Exit(1)


def print_job(job: Job) -> None:
    """Rich table of a job's stages."""
    console.print(
        f"job [bold]{job.name}[/]: {_status(job.status)}  (model {job.spec.get('model')})"
    )
    if job.error:
        console.print(f"  error: {job.error}", markup=False)
    table = Table("stage", "status", "time", "note")
    for s in job.stages:
        took = f"{s.duration:.1f}s" if s.duration is not None else ""
        table.add_row(s.name, _status(s.status), took, s.error or s.note or "")
    console.print(table)
    for n, r in enumerate(job.resumes, 1):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        where = f"from {r['checkpoint']} (step {r['step']})" if r.get("checkpoint") else ""
        console.print(f"  resume {n}: {when} {where or r.get('note', '')}", markup=False)


def job_dict(job: Job) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(job)


def _status(status: str) -> str:
    style = _STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def _where(job: Job) -> str:
    """Where the job's worker runs: a local pid, or its Ray submission."""
    if job.submission:
        return f"Ray job {job.submission} on {job.compute}"
    return f"pid {job.pid}"
