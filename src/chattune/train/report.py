"""The evaluation report: a metrics table (base vs fine-tuned) and sample answers side by
side, as JSON (for programs, MLflow and ``jobs show --metrics``) and Markdown (for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chattune.workspace import write_atomic

# What each metric means, in the order the table lists them.
METRICS = {
    "loss": "eval loss: cross-entropy per assistant token (test split; lower is better)",
    "perplexity": "exp(loss) (lower is better)",
    "token_accuracy": "next assistant token predicted exactly (higher is better)",
    "rouge_l": "ROUGE-L F-measure of generated answers vs references, 0-1 (higher is better)",
    "bleu": "corpus BLEU of generated answers vs references, 0-100 (higher is better)",
    # method: dpo (the base is the reference, so its rewards are 0 and its loss log 2)
    "rewards/accuracies": "DPO: pairs whose chosen reward beats the rejected (higher is better)",
    "rewards/margins": "DPO: chosen minus rejected reward, beta * log-ratio (higher is better)",
    "rewards/chosen": "DPO: beta * log(policy / reference) of the chosen answers",
    "rewards/rejected": "DPO: beta * log(policy / reference) of the rejected answers",
    "logps_accuracy": "DPO: pairs whose chosen answer is likelier than the rejected one",
}
SAMPLES_SHOWN = 3


def build(
    base: dict[str, float],
    tuned: dict[str, float],
    facts: dict[str, Any],
    samples: list[dict[str, str]],
) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``metrics`` ``{name: {base, fine_tuned}}``, the
    ``facts`` (splits, sizes, settings) and up to three ``samples``."""
    table = {
        name: {"base": base[name], "fine_tuned": tuned[name], "meaning": meaning}
        for name, meaning in METRICS.items()
        if name in base and name in tuned
    }
    return {"metrics": table, **facts, "samples": samples[:SAMPLES_SHOWN]}


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``report.json`` and ``report.md`` in ``out_dir`` (each written atomically)."""
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_atomic(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(md_path, markdown(report))
    return json_path, md_path


def markdown(report: dict[str, Any]) -> str:
    """The report for people: the metrics table, then each sample's answers side by side."""
    lines = ["# Evaluation report", ""]
    test, gen = report.get("test", {}), report.get("generation", {})
    if test:
        lines.append(
            f"Test split: {test['examples']} conversations, {test['tokens']} assistant tokens."
        )
    if gen:
        lines.append(
            f"Generation: {gen['rows']} prompts from `{gen['split']}`, greedy, at "
            f"most {gen['max_new_tokens']} new tokens."
        )
    lines += ["", "| metric | base | fine-tuned | change |", "|---|---:|---:|---:|"]
    for name, row in report["metrics"].items():
        change = row["fine_tuned"] - row["base"]
        lines.append(f"| {name} | {row['base']:.4f} | {row['fine_tuned']:.4f} | {change:+.4f} |")
    for i, s in enumerate(report.get("samples", []), 1):
        lines += ["", f"## Sample {i}", "", f"**Prompt:** {_cell(s['prompt'])}", ""]
        lines += ["| reference | base | fine-tuned |", "|---|---|---|"]
        lines.append(f"| {_cell(s['reference'])} | {_cell(s['base'])} | {_cell(s['fine_tuned'])} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text for one Markdown table cell: pipes escaped, line breaks as <br>."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")
