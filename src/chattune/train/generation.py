"""Generation metrics: answers to a bounded sample of prompts, scored against references.

The sample is the first ``rows`` conversations of ``test_gen`` (else ``test``), cut before
their first assistant turn; that turn is the reference. Answers come from one left-padded,
greedy ``generate`` call per batch. ROUGE-L (``rouge-score``, F-measure with stemming, 0-1)
and BLEU (``sacrebleu`` corpus BLEU, 0-100) are the libraries' own implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chattune.data.chat import Message, prepare_messages


@dataclass(frozen=True)
class Prompt:
    """One sample row: the conversation up to an assistant turn, and that turn's text."""

    messages: list[Message]
    reference: str


def sample(path: str, rows: int) -> list[Prompt]:
    """The first ``rows`` conversations of ``path`` that have an assistant turn."""
    from chattune.data.readers import load_conversations

    found: list[Prompt] = []
    for conv in load_conversations(path):
        if len(found) >= rows:
            break
        turns = [i for i, m in enumerate(conv.messages) if m["role"] == "assistant"]
        if turns and turns[0] > 0:
            first = turns[0]
            found.append(Prompt(list(conv.messages[:first]), conv.messages[first]["content"]))
    return found


def generate(
    model: Any, tokenizer: Any, prompts: list[Prompt], max_new_tokens: int, batch_size: int = 16
) -> list[str]:
    """Greedy answers to ``prompts``, ``batch_size`` at a time (left-padded batches)."""
    import torch

    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for i in range(0, len(prompts), batch_size):
        texts = [
            tokenizer.apply_chat_template(
                prepare_messages(tokenizer, p.messages), tokenize=False, add_generation_prompt=True
            )
            for p in prompts[i : i + batch_size]
        ]
        # The template already writes the special tokens (e.g. Phi-3's <s>).
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad
            )
        new = out[:, batch["input_ids"].shape[1] :]
        answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return answers


def metrics(answers: list[str], references: list[str]) -> dict[str, float]:
    """``rouge_l`` (mean F-measure, 0-1) and ``bleu`` (corpus BLEU, 0-100)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [
        scorer.score(ref, ans)["rougeL"].fmeasure
        for ans, ref in zip(answers, references, strict=True)
    ]
    bleu = sacrebleu.corpus_bleu(answers, [references]).score
    return {"rouge_l": sum(rouge) / max(len(rouge), 1), "bleu": float(bleu)}
