"""Read a job's metrics back from MLflow: final values, step history, loss-curve PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chattune.workspace import Workspace


def read_metrics(ws: Workspace, run_id: str, plot: str | Path | None = None) -> dict[str, Any]:
    """``{"final": {name: value}, "history": {name: [(step, value), ...]}, "plot": path}``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ws.mlflow_uri)
    run = client.get_run(run_id)
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }
    result: dict[str, Any] = {
        "final": dict(run.data.metrics),
        "history": history,
        "run_id": run_id,
        "status": run.info.status,
    }
    if plot is not None:
        result["plot"] = str(loss_plot(history, Path(plot)))
    return result


def loss_plot(history: dict[str, list[tuple[int, float]]], out: Path) -> Path:
    """Training and eval loss against step, saved as PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("loss", "eval_loss"):
        points = sorted(history.get(key, []))
        if points:
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)
    return out
