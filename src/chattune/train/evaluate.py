"""Stage `evaluate`: the base and the fine-tuned model on the same held-out data.

- Loss, perplexity and token accuracy on the test split (assistant tokens only), by
  :func:`chattune.train.scoring.score`: the same code as the evaluation during training.
- ROUGE-L and BLEU of greedy answers to a bounded sample of ``test_gen`` (else ``test``).
- A report (``report.json`` and ``report.md``): the metrics table and three prompts with
  the reference, the base answer and the fine-tuned answer side by side.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chattune.train import generation, report
from chattune.train.generation import Prompt
from chattune.train.params import TrainParams
from chattune.train.preprocess import read_examples
from chattune.train.results import Evaluation, FineTuned, Hooks, Preprocessed
from chattune.train.scoring import load_model, score
from chattune.train.template import Example


def run(
    data: Preprocessed,
    tuned: FineTuned,
    p: TrainParams,
    hooks: Hooks,
    gen_data: str | None = None,
    out_dir: Path | None = None,
) -> Evaluation:
    """Score both models; log ``test_*``/``base_test_*`` and ``gen_*``/``base_gen_*``
    metrics; write the report into ``out_dir``."""
    if "test" not in data.splits:
        hooks.log.info("no data.test: nothing to evaluate")
        return Evaluation(skipped="no test data")
    from transformers import AutoTokenizer

    examples = read_examples(data.splits["test"].file)  # memory-mapped, read batch by batch
    rows = p.generation_eval_rows
    prompts = generation.sample(gen_data, rows) if gen_data and rows > 0 else []
    tokenizer = AutoTokenizer.from_pretrained(tuned.final_model)
    dtype = "bfloat16" if p.precision == "bf16" else "float32"
    adapter_base = tuned.base_model_dir if tuned.adapter_only else None
    base, base_answers = assess(
        load_model(tuned.base_model_dir, dtype=dtype), tokenizer, examples, prompts, p
    )
    fine, fine_answers = assess(
        load_model(tuned.final_model, adapter_base, dtype=dtype), tokenizer, examples, prompts, p
    )
    metrics = named(base, fine)
    hooks.metrics(metrics, None)
    for name in ("loss", "perplexity", "token_accuracy", "rouge_l", "bleu"):
        if name in base:
            hooks.log.info("%s: base %.4f -> fine-tuned %.4f", name, base[name], fine[name])
    facts = {
        "test": {"split": "test", "examples": len(examples), "tokens": int(fine["tokens"])},
        "generation": {
            "split": Path(gen_data).stem if gen_data else None,
            "rows": len(prompts),
            "max_new_tokens": p.generation_max_new_tokens,
        },
    }
    samples = [
        {"prompt": shown(q), "reference": q.reference, "base": b, "fine_tuned": f}
        for q, b, f in zip(prompts, base_answers, fine_answers, strict=True)
    ]
    json_path, md_path = report.write(
        report.build(base, fine, facts, samples), out_dir or Path(tuned.final_model).parent
    )
    hooks.log.info("evaluation report: %s", md_path)
    return Evaluation(
        metrics=metrics,
        examples=len(examples),
        report_json=str(json_path),
        report_markdown=str(md_path),
    )


def assess(
    model: Any, tokenizer: Any, examples: Sequence[Example], prompts: list[Prompt], p: TrainParams
) -> tuple[dict[str, float], list[str]]:
    """One model's scores on the test examples and its answers to the prompts (then the
    model is released, so base and fine-tuned are never in memory together)."""
    scores = score(model, examples, p.per_device_eval_batch_size)
    answers: list[str] = []
    if prompts:
        answers = generation.generate(model, tokenizer, prompts, p.generation_max_new_tokens)
        scores |= generation.metrics(answers, [q.reference for q in prompts])
    del model
    gc.collect()
    return scores, answers


def named(base: dict[str, float], fine: dict[str, float]) -> dict[str, float]:
    """MLflow names: ``test_*`` (test split) and ``gen_*`` (generation sample), with a
    ``base_`` prefix for the base model."""
    out: dict[str, float] = {}
    for prefix, scores in (("", fine), ("base_", base)):
        for key, value in scores.items():
            split = "gen" if key in ("rouge_l", "bleu") else "test"
            out[f"{prefix}{split}_{key}"] = value
    return out


def shown(prompt: Prompt) -> str:
    """A prompt as the report shows it: the last user turn, after any earlier turns."""
    if len(prompt.messages) == 1:
        return prompt.messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt.messages)
