"""Two models on the same held-out conversations: loss, perplexity, token accuracy, ROUGE-L,
BLEU, answer length, latency, and answers side by side (``chattune models compare``).

>>> result = client.models.compare("tiny-chat:1", "tiny-chat:2", samples=4)
>>> result.better("test_loss")
'tiny-chat:2'

Scoring and generation are the evaluate stage's own functions (train/scoring.py,
train/generation.py), so a comparison's ``test_loss`` is the job's ``test_loss`` when the
data is the job's test split.
"""

from __future__ import annotations

import gc
import html
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chattune.train.results import Hooks

LOWER_IS_BETTER = {"test_loss", "test_perplexity", "latency_s"}
"""Metrics where less is better; for the rest (accuracy, ROUGE-L, BLEU) more is."""


@dataclass(frozen=True)
class Candidate:
    """A model to score: what the report calls it and its transformers folder."""

    ref: str
    folder: str


@dataclass
class Comparison:
    """Metrics per model (by ref), sample answers side by side, where the report is."""

    models: list[str]
    metrics: dict[str, dict[str, float]]
    samples: list[dict[str, str]] = field(default_factory=list)
    data: str = ""
    report_markdown: str | None = None
    report_html: str | None = None
    mlflow_run_id: str | None = None

    def better(self, metric: str = "test_loss") -> str:
        """The ref with the better value of ``metric``."""
        values = {m: self.metrics[m][metric] for m in self.models}
        pick = min if metric in LOWER_IS_BETTER else max
        return pick(values, key=lambda m: values[m])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    model: Candidate, data: str, samples: int, max_seq_length: int, max_new_tokens: int
) -> tuple[dict[str, float], list[str], list[Any]]:
    """One model's metrics on ``data`` and its answers to the first ``samples`` prompts."""
    from transformers import AutoTokenizer

    from chattune.train import generation
    from chattune.train.scoring import load_model, score

    tokenizer = AutoTokenizer.from_pretrained(model.folder)
    examples = _examples(model.folder, data, max_seq_length)
    loaded = load_model(model.folder)
    scores = score(loaded, examples)
    metrics = {f"test_{k}": v for k, v in scores.items() if k != "tokens"}
    prompts = generation.sample(data, samples) if samples > 0 else []
    answers: list[str] = []
    if prompts:
        started = time.perf_counter()
        answers = [generation.generate(loaded, tokenizer, [p], max_new_tokens)[0] for p in prompts]
        metrics["latency_s"] = (time.perf_counter() - started) / len(prompts)
        metrics |= generation.metrics(answers, [p.reference for p in prompts])
        lengths = [len(tokenizer(a, add_special_tokens=False).input_ids) for a in answers]
        metrics["answer_tokens"] = sum(lengths) / len(lengths)
    del loaded
    gc.collect()
    return metrics, answers, prompts


def _examples(folder: str, data: str, max_seq_length: int) -> list[Any]:
    """``data`` tokenized with the model's own chat template (the preprocess stage)."""
    from chattune.train import preprocess
    from chattune.train.results import ImportedModel

    imported = ImportedModel(
        model_dir=folder, model=folder, model_type="", context_length=max_seq_length
    )
    with tempfile.TemporaryDirectory(prefix="chattune-compare-") as tmp:
        prep = preprocess.run(imported, {"test": data}, max_seq_length, Path(tmp), Hooks())
        return list(preprocess.read_examples(prep.splits["test"].file))  # before tmp goes


def compare(
    models: list[Candidate],
    data: str,
    samples: int = 3,
    max_seq_length: int = 512,
    max_new_tokens: int = 64,
) -> Comparison:
    """Score every model on the same data; their answers to the same prompts side by side."""
    metrics: dict[str, dict[str, float]] = {}
    answers: dict[str, list[str]] = {}
    prompts: list[Any] = []
    for model in models:
        metrics[model.ref], answers[model.ref], prompts = evaluate(
            model, data, samples, max_seq_length, max_new_tokens
        )
    side_by_side = [
        {"prompt": p.messages[-1]["content"], "reference": p.reference}
        | {m.ref: answers[m.ref][i] for m in models}
        for i, p in enumerate(prompts)
    ]
    return Comparison([m.ref for m in models], metrics, side_by_side, data)


def markdown(result: Comparison) -> str:
    """The report: metrics table (best value in bold), then the answers side by side."""
    names = sorted({k for m in result.metrics.values() for k in m})
    lines = [f"# {' vs '.join(result.models)}", "", f"Data: `{result.data}`", ""]
    lines += ["| metric | " + " | ".join(result.models) + " |"]
    lines += ["|---" * (len(result.models) + 1) + "|"]
    for name in names:
        best = result.better(name) if all(name in result.metrics[m] for m in result.models) else ""
        cells = [
            f"**{result.metrics[m][name]:.4g}**" if m == best else f"{result.metrics[m][name]:.4g}"
            for m in result.models
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for i, sample in enumerate(result.samples, 1):
        lines += ["", f"## Sample {i}", "", f"**Prompt:** {_flat(sample['prompt'])}", ""]
        lines += [f"- **reference:** {_flat(sample['reference'])}"]
        lines += [f"- **{m}:** {_flat(sample[m])}" for m in result.models]
    return "\n".join(lines) + "\n"


def html_report(result: Comparison, figure: str | None) -> str:
    """The same report as a standalone HTML page (the figure beside it)."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td>"
        + "".join(f"<td>{result.metrics[m].get(k, float('nan')):.4g}</td>" for m in result.models)
        + "</tr>"
        for k in sorted({k for m in result.metrics.values() for k in m})
    )
    head = "".join(f"<th>{html.escape(m)}</th>" for m in result.models)
    samples = "".join(
        f"<h3>Sample {i}</h3><p><b>Prompt:</b> {html.escape(s['prompt'])}</p><ul>"
        + "".join(
            f"<li><b>{html.escape(k)}:</b> {html.escape(s[k])}</li>"
            for k in ("reference", *result.models)
        )
        + "</ul>"
        for i, s in enumerate(result.samples, 1)
    )
    img = f'<img src="{html.escape(figure)}" alt="metrics">' if figure else ""
    return (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(' vs '.join(result.models))}"
        f"</title><h1>{html.escape(' vs '.join(result.models))}</h1>"
        f"<table border=1><tr><th>metric</th>{head}</tr>{rows}</table>{img}{samples}"
    )


def figure(result: Comparison, path: Path) -> Path:
    """Bar charts of each metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for m in result.metrics.values() for k in m})
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.bar(range(len(result.models)), [result.metrics[m].get(name, 0) for m in result.models])
        ax.set_xticks(range(len(result.models)), result.models, rotation=30, fontsize=7)
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(result: Comparison, folder: Path) -> None:
    """``report.md``, ``report.html``, ``metrics.png`` and ``comparison.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    png = figure(result, folder / "metrics.png")
    (folder / "report.md").write_text(markdown(result))
    (folder / "report.html").write_text(html_report(result, png.name))
    result.report_markdown = str(folder / "report.md")
    result.report_html = str(folder / "report.html")
    (folder / "comparison.json").write_text(json.dumps(result.to_dict(), indent=1))


def log_to_mlflow(result: Comparison, folder: Path, tracking_uri: str, artifact_root: str) -> str:
    """An MLflow run in experiment ``model-comparisons``: each model's metrics (prefixed
    ``a_``, ``b_``, ...), the report and the figure as artifacts (under ``artifact_root``,
    the workspace's: never MLflow's default ``./mlruns`` in the current folder)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("model-comparisons")
    exp_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("model-comparisons", artifact_location=artifact_root)
    )
    run = client.create_run(exp_id, run_name=" vs ".join(result.models)).info.run_id
    for i, ref in enumerate(result.models):
        prefix = "abcdefgh"[i]
        client.set_tag(run, f"model_{prefix}", ref)
        for key, value in result.metrics[ref].items():
            client.log_metric(run, f"{prefix}_{key}", value)
    for name in ("report.md", "report.html", "metrics.png", "comparison.json"):
        client.log_artifact(run, str(folder / name))
    client.set_terminated(run)
    return run


def _flat(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
