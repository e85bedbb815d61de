"""Read a job's metrics back from MLflow: final values, step history, loss-curve PNG, and the
evaluation report the evaluate stage wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chattune.workspace import Workspace


def read_metrics(ws: Workspace, run_id: str, plot: str | Path | None = None) -> dict[str, Any]:
    """``{"final": {name: value}, "history": {name: [(step, value), ...]}, "plot": path,
    "report": {...} | None, "report_markdown": path | None}``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ws.mlflow_connect_uri)
    run = client.get_run(run_id)
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }
    job = run.data.tags.get("chattune.job", run.info.run_name)
    result: dict[str, Any] = {
        "final": dict(run.data.metrics),
        "history": history,
        "run_id": run_id,
        "status": run.info.status,
        "report": None,
        "report_markdown": None,
    }
    report = ws.job_dir(job) / "evaluate" / "report.json"
    if report.exists():
        result["report"] = json.loads(report.read_text())
        result["report_markdown"] = str(report.with_suffix(".md"))
    if plot is not None:
        title = f"{job} · {run.data.tags.get('chattune.model', run.info.run_name)}"
        base = result["final"].get("base_test_loss")
        result["plot"] = str(loss_plot(history, Path(plot), title, base))
    return result


def loss_plot(
    history: dict[str, list[tuple[int, float]]],
    out: Path,
    title: str = "",
    base_eval_loss: float | None = None,
) -> Path:
    """:func:`loss_figure`, saved as PNG atomically."""
    import matplotlib.pyplot as plt

    fig = loss_figure(history, title, base_eval_loss)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)
    return out


def loss_figure(
    history: dict[str, list[tuple[int, float]]], title: str, base_eval_loss: float | None
) -> Any:
    """Train and eval loss against the (integer) optimizer step, one point per step, and the
    base model's test loss as a dashed reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("loss", "train loss"), ("eval_loss", "eval loss (during training)")):
        points = sorted(dict(history.get(key, [])).items())  # one point per step
        if points:
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=label)
    if base_eval_loss is not None:
        ax.axhline(
            base_eval_loss,
            linestyle="--",
            color="grey",
            label=f"base model, test split ({base_eval_loss:.4f})",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per assistant token)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
