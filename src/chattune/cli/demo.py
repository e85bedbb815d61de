"""`chattune demo`: the whole flow on the offline default, narrated step by step.

Foundation model → compute → data (5%) → pipeline job → metrics → register → endpoint →
deployment → traffic → invoke → delete; ends with a summary table (step, time, result).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chattune.cli.common import WorkspaceOpt, console, get_client
from chattune.errors import NotFoundError, ValidationError

# Shipped with the package (a wheel install has no repository): the demo's job spec and
# request; tests keep them equal to the repository's examples/ that users copy.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STEPS = (
    "workspace",
    "offline assets",
    "foundation model",
    "compute",
    "data: ultrachat-sample split",
    "fine-tuning pipeline",
    "metrics",
    "register model",
    "create endpoint",
    "create deployment",
    "route traffic",
    "invoke",
    "delete endpoint",
)


class Narrator:
    """Prints each step as it starts and records (step, time, result) for the summary."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        console.rule(f"[bold]{len(self.rows) + 1}. {title}")
        result = {"text": ""}
        started = time.time()
        yield lambda text: result.__setitem__("text", text)
        took = time.time() - started
        self.rows.append((title, took, result["text"]))
        console.print(f"[green]✓[/] {result['text']}  [dim]({took:.1f}s)[/]")

    def summary(self) -> Table:
        table = Table("step", "time", "result", title="chattune demo")
        for title, took, text in self.rows:
            table.add_row(title, f"{took:.1f}s", text)
        table.add_row("[bold]total", f"{sum(r[1] for r in self.rows):.1f}s", "")
        return table


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        model: str = typer.Option("SmolLM2-135M-Instruct", "--model", help="Catalog model"),
        split_pc: float = typer.Option(5, "--split-pc", help="Percent of each split to use"),
        spec: Path = typer.Option(EXAMPLES / "job.yaml", "--spec", help="Job spec to run"),
        request: Path = typer.Option(
            EXAMPLES / "sample_score.json",
            "--request-file",
            help="Request shape to send (its conversation is replaced by one from test_gen)",
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the steps and check the job spec; run nothing"
        ),
        workspace: str = WorkspaceOpt,
    ) -> None:
        """Run the whole fine-tune → serve flow on the offline model and data, narrated.

        Example: chattune demo
        Example: chattune demo --dry-run
        """
        if dry_run:
            plan_demo(get_client(workspace), model, split_pc, spec, request)
            return
        run_demo(get_client(workspace), model, split_pc, spec, request)


def plan_demo(client: Any, model: str, split_pc: float, spec: Path, request: Path) -> None:
    """What the demo would do: its steps, and its job spec checked (parameters resolved)."""
    _check_files(spec, request)
    body = json.loads(request.read_text())
    if not isinstance(body, dict) or "input_data" not in body:
        raise ValidationError(f"{request}: no input_data", "see the shipped sample_score.json")
    data_dir = client.workspace.root / "demo" / "ultrachat_200k_dataset"
    plan = client.jobs.plan(spec, _overrides(model, data_dir), data_must_exist=False)
    console.print(f"chattune demo (dry run: nothing started), model {plan.model}")
    for i, step in enumerate(STEPS, 1):
        console.print(f"  {i:2}. {step}")
    console.print(f"job spec {spec}: valid; stages {', '.join(s.name for s in plan.stages)}")
    chosen = {k: v for k, v in plan.parameters.items() if v["source"] != "default"}
    for name, row in chosen.items():
        console.print(f"  {name} = {row['value']!r}  [dim]({row['source']})[/]", highlight=False)
    console.print(f"  (and {len(plan.parameters) - len(chosen)} parameters at their defaults)")
    console.print(f"data: {split_pc:g}% of ultrachat-sample into {data_dir}")


def _overrides(model: str, data_dir: Path) -> dict[str, Any]:
    data = {
        "train": str(data_dir / "train_sft.jsonl"),
        "test": str(data_dir / "test_sft.jsonl"),
        "test_gen": str(data_dir / "full" / "test_gen.jsonl"),
    }
    return {"name": f"demo-{time.strftime('%Y%m%d-%H%M%S')}", "model": model, "data": data}


def _check_files(*paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise NotFoundError(
                f"{path} not found", f"give an existing file (the shipped ones are in {EXAMPLES})"
            )


def run_demo(client: Any, model: str, split_pc: float, spec: Path, request: Path) -> None:
    """The demo flow; every step is one SDK call plus printing."""
    _check_files(spec, request)
    n = Narrator()
    _prepare(n, client, model)
    data_dir = client.workspace.root / "demo" / "ultrachat_200k_dataset"
    with n.step(f"data: ultrachat-sample, {split_pc:g}% split") as done:
        splits = client.data.download("ultrachat-sample", split_pc=split_pc, out=data_dir)
        rows = {name: info.rows for name, info in splits.items()}
        console.print(f"  {rows}  →  {data_dir}")
        # A 5% split leaves one test_gen row; generation metrics want a sample of them.
        gen = client.data.download("ultrachat-sample", split_pc=100, out=data_dir / "full")
        console.print(f"  generation prompts: test_gen, {gen['test_gen'].rows} rows (all)")
        done(", ".join(f"{k} {v}" for k, v in rows.items()))
    job = _train(n, client, model, spec, data_dir)
    with n.step("register model") as done:
        registered = client.models.register(
            job=job.name, name=f"{model}-ultrachat", version=time.strftime("%Y%m%d%H%M%S")
        )
        done(registered.ref)
    _serve(n, client, registered.ref, request, data_dir)
    console.print(n.summary())


def _prepare(n: Narrator, client: Any, model: str) -> None:
    with n.step("workspace") as done:
        done(str(client.workspace.root))
    with n.step("offline assets") as done:
        client.assets.fetch(progress=lambda m: console.print(f"  {m}"))
        done("SmolLM2-135M-Instruct, tiny-random-phi3, ultrachat-sample")
    with n.step("foundation model") as done:
        card = client.models.get(model, label="latest")
        console.print(f"  {card.name} v{card.version}: {card.description}")
        done(f"{card.name}:{card.version} ({card.parameters}, {card.license})")
    with n.step("compute") as done:
        check = client.compute.check(model, method="lora")
        console.print(f"  {json.dumps(check)}")
        done(
            f"{check['compute']}, needs ~{check['estimated_memory_gb']} GB: "
            + ("ok" if check["ok"] else "; ".join(check["reasons"]))
        )


def _train(n: Narrator, client: Any, model: str, spec: Path, data_dir: Path) -> Any:
    with n.step("fine-tuning pipeline") as done:
        job = client.jobs.create(spec, overrides=_overrides(model, data_dir))
        console.print(f"  job {job.name} started (pid {job.pid}); following it")
        job = follow(client, job.name)
        if job.status != "completed":
            raise typer.Exit(_fail(client, job))
        done(f"job {job.name} completed")
    with n.step("metrics") as done:
        plot = client.workspace.job_dir(job.name) / "loss.png"
        metrics = client.jobs.metrics(job.name, plot=plot)
        final = metrics["final"]
        base, tuned = final["base_test_loss"], final["test_loss"]
        console.print(f"  eval loss on test_sft: base {base:.4f} → fine-tuned {tuned:.4f}")
        console.print(
            f"  token accuracy: {final['base_test_token_accuracy']:.3f} → "
            f"{final['test_token_accuracy']:.3f}; loss curve {plot}"
        )
        _print_report(metrics)
        done(f"eval loss base {base:.4f} → fine-tuned {tuned:.4f}")
    return job


def _print_report(metrics: dict[str, Any]) -> None:
    """Generation metrics and the report's side-by-side answers."""
    report = metrics.get("report")
    if not report:
        return
    gen = report["generation"]
    for name in ("rouge_l", "bleu"):
        row = report["metrics"].get(name)
        if row:
            console.print(
                f"  {name} on {gen['rows']} {gen['split']} prompts: base {row['base']:.4f} → "
                f"fine-tuned {row['fine_tuned']:.4f}"
            )
    for i, sample in enumerate(report["samples"], 1):
        console.print(f"  [bold]sample {i}[/]: {_short(sample['prompt'])}", highlight=False)
        for key in ("reference", "base", "fine_tuned"):
            console.print(f"    {key:>10}: {_short(sample[key])}", markup=False, highlight=False)
    console.print(f"  report: {metrics['report_markdown']}")


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _serve(n: Narrator, client: Any, model_ref: str, request: Path, data_dir: Path) -> None:
    endpoint, eps = "chattune-demo", client.endpoints
    try:
        with n.step("create endpoint") as done:
            if any(e.name == endpoint for e in eps.list()):
                eps.delete(endpoint)
            info = eps.create(endpoint)
            done(f"{endpoint} at {info.scoring_uri}")
        with n.step("create deployment") as done:
            eps.create_deployment(endpoint, "demo", model_ref, instance_count=1)
            done(f"demo serving {model_ref}")
        with n.step("route traffic") as done:
            eps.update(endpoint, traffic={"demo": 100})
            done("demo=100")
        with n.step("invoke") as done:
            body = json.loads(request.read_text())
            body["input_data"]["input_string"] = _test_conversation(data_dir / "test_gen.jsonl")
            console.print(f"  user: {body['input_data']['input_string'][-1]['content'][:200]}")
            answer = invoke_sized(eps, endpoint, "demo", body)
            console.print(f"  assistant: {answer['output']}", markup=False)
            done(f"{len(answer['output'])} chars answered")
    finally:
        with n.step("delete endpoint") as done:
            if any(e.name == endpoint for e in eps.list()):
                eps.delete(endpoint)
            done(f"{endpoint} deleted")


PROBE_TOKENS = 8
TIMEOUT_SHARE = 0.5
"""The reference call is sized to take at most this share of the deployment's request
timeout at the speed measured just before (a loaded machine may slow down meanwhile)."""


def invoke_sized(eps: Any, endpoint: str, deployment: str, body: dict[str, Any]) -> Any:
    """The reference ``/score`` call, its ``max_new_tokens`` sized to this machine's speed.

    A short ``/v1/chat/completions`` call first measures seconds per generated token
    (prompt processing included, so the estimate errs slow); the ``/score`` request then
    asks for no more tokens than fit in half the request timeout. On a fast machine that is
    the request file's own ``max_new_tokens``; on a loaded one, fewer, instead of a 408.
    """
    parameters = body["input_data"].setdefault("parameters", {})
    wanted = int(parameters.get("max_new_tokens", 64))
    messages = body["input_data"]["input_string"]
    probe = {"messages": messages, "max_tokens": PROBE_TOKENS, "temperature": 0}
    started = time.monotonic()
    usage = eps.invoke(endpoint, probe).get("usage") or {}
    took = time.monotonic() - started
    per_token = took / max(int(usage.get("completion_tokens") or 0), 1)
    settings = eps.get_deployment(endpoint, deployment).settings
    budget = settings.request_timeout_ms / 1000 * TIMEOUT_SHARE
    sized = max(1, min(wanted, int(budget / per_token)))
    console.print(
        f"  measured {per_token:.2f} s/token ({took:.1f}s for a {PROBE_TOKENS}-token probe); "
        f"request timeout {settings.request_timeout_ms / 1000:g}s → max_new_tokens {sized}"
        + ("" if sized == wanted else f" (the request file asks {wanted})")
    )
    parameters["max_new_tokens"] = sized
    return eps.invoke(endpoint, body)


def follow(client: Any, name: str) -> Any:
    """Render a job's stages and training steps as progress bars until it finishes."""
    columns = (
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, Any] = {}
        while True:
            job = client.jobs.get(name)
            live = client.jobs.progress(name)
            for s in job.stages:
                if s.status == "queued":
                    continue
                task = tasks.get(s.name)
                if task is None:
                    task = tasks[s.name] = bars.add_task(s.name, total=1, info="")
                info = s.note or s.status
                if s.name == "finetune" and s.status == "running" and live.get("total"):
                    loss = live.get("loss")
                    bars.update(
                        task,
                        total=live["total"],
                        completed=live.get("step", 0),
                        info=f"step {live.get('step')}/{live['total']}"
                        + (f" loss {loss:.3f}" if loss is not None else ""),
                    )
                    continue
                if s.status in ("completed", "failed", "canceled"):
                    total = bars.tasks[task].total or 1
                    bars.update(
                        task,
                        completed=total if s.status == "completed" else 0,
                        info=s.error or info,
                    )
                else:
                    bars.update(task, info=info)
            if job.done:
                return job
            time.sleep(0.5)


def _fail(client: Any, job: Any) -> int:
    console.print(f"[red]job {job.name} {job.status}[/]: {job.error}", markup=False)
    console.print(f"log: {client.workspace.job_dir(job.name) / 'job.log'}")
    return 1


def _test_conversation(path: Path) -> list[dict[str, str]]:
    """The first test_gen conversation, cut before its first assistant turn."""
    with open(path) as f:
        messages = json.loads(f.readline())["messages"]
    first_assistant = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return [{"role": m["role"], "content": m["content"]} for m in messages[:first_assistant]]
