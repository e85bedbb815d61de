"""Generation metrics: the sample, batched greedy answers, ROUGE-L/BLEU, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chattune.train import generation, report


def test_sample_takes_the_first_rows_cut_before_their_first_assistant_turn(
    tmp_path: Path,
) -> None:
    rows = [
        [{"role": "user", "content": "a?"}, {"role": "assistant", "content": "A."}],
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "b?"},
            {"role": "assistant", "content": "B."},
            {"role": "user", "content": "more?"},
            {"role": "assistant", "content": "no"},
        ],
        [{"role": "user", "content": "c?"}, {"role": "assistant", "content": "C."}],
    ]
    path = tmp_path / "test_gen.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    prompts = generation.sample(str(path), 2)
    assert [p.reference for p in prompts] == ["A.", "B."]
    assert [m["role"] for m in prompts[1].messages] == ["system", "user"]


def test_rouge_l_and_bleu_are_the_libraries_scores() -> None:
    answers = ["the cat sat on the mat", "hello there"]
    refs = ["the cat sat on the mat", "general kenobi"]
    scores = generation.metrics(answers, refs)
    assert scores["rouge_l"] == pytest.approx(0.5)  # one exact, one with no common word
    assert 0 < scores["bleu"] < 100
    assert generation.metrics(refs, refs) == {"rouge_l": 1.0, "bleu": pytest.approx(100.0)}


def test_batched_greedy_answers_equal_one_at_a_time(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["hi", "what is the capital of France, and why?", "2+2?"]
    prompts = [generation.Prompt([{"role": "user", "content": t}], "") for t in texts]
    together = generation.generate(model, tokenizer, prompts, 8, batch_size=3)
    alone = [generation.generate(model, tokenizer, [p], 8)[0] for p in prompts]
    assert together == alone
    assert all(together)


def test_report_puts_answers_side_by_side(tmp_path: Path) -> None:
    base = {"loss": 2.0, "perplexity": 7.39, "token_accuracy": 0.3, "rouge_l": 0.1, "bleu": 1.0}
    fine = {"loss": 1.5, "perplexity": 4.48, "token_accuracy": 0.4, "rouge_l": 0.2, "bleu": 3.0}
    samples = [
        {"prompt": f"q{i}", "reference": "a|b\nc", "base": "x", "fine_tuned": "y"} for i in range(5)
    ]
    facts = {
        "test": {"split": "test", "examples": 9, "tokens": 99},
        "generation": {"split": "test_gen", "rows": 5, "max_new_tokens": 8},
    }
    json_path, md_path = report.write(report.build(base, fine, facts, samples), tmp_path)
    data = json.loads(json_path.read_text())
    assert data["metrics"]["bleu"] == {
        "base": 1.0,
        "fine_tuned": 3.0,
        "meaning": report.METRICS["bleu"],
    }
    assert len(data["samples"]) == 3
    text = md_path.read_text()
    assert "| loss | 2.0000 | 1.5000 | -0.5000 |" in text
    assert "| a\\|b<br>c | x | y |" in text and "## Sample 3" in text and "Sample 4" not in text
