"""Stage `preprocess` for preference tuning: pairs → prompt and answer token ids.

Each answer is what the model's own chat template adds after the prompt rendered with its
generation prompt (``<|im_start|>assistant\\n``), through the end-of-turn token: rendering
``prompt + answer`` must start with the rendered prompt, else the template cannot be used.
Truncation as TRL's ``max_prompt_length`` did: the prompt keeps its last
``max_prompt_length`` tokens (the question nearest the answer), then each answer is cut to
what ``max_seq_length`` leaves; a pair with no answer token left is dropped.

With ``precompute_reference`` (full fine-tuning), the base model's log-probabilities of both
answers are computed here once and stored with the pair, so training needs no second copy
of the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chattune.data.preference import PreferencePair
from chattune.errors import ValidationError
from chattune.train.dpo_loss import Pair
from chattune.train.results import Hooks, ImportedModel, Preprocessed, SplitStats


def run(
    model: ImportedModel,
    data: dict[str, str],
    max_seq_length: int,
    max_prompt_length: int,
    out_dir: Path,
    hooks: Hooks,
    precompute_reference: bool = False,
) -> Preprocessed:
    """Tokenize every split's pairs; ``max_seq_length`` <= 0 means the model's context,
    ``max_prompt_length`` <= 0 half of it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    max_len = max_seq_length if max_seq_length > 0 else model.context_length
    max_prompt = max_prompt_length if max_prompt_length > 0 else max_len // 2
    if max_prompt >= max_len:
        raise ValidationError(
            f"parameters.max_prompt_length {max_prompt} leaves no room for an answer within "
            f"max_seq_length {max_len}",
            "set max_prompt_length below max_seq_length (e.g. half of it)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, path in data.items():
        splits[split] = _split(tokenizer, split, path, (max_len, max_prompt), out_dir, hooks)
    if precompute_reference:
        store_reference_logps(model.model_dir, [Path(s.file) for s in splits.values()], hooks)
    return Preprocessed(max_seq_length=max_len, splits=splits)


def _split(
    tokenizer: Any, split: str, path: str, lengths: tuple[int, int], out_dir: Path, hooks: Hooks
) -> SplitStats:
    from chattune.data.readers import iter_pairs
    from chattune.train.template import max_token_chars

    chars = lengths[0] * max_token_chars(tokenizer)  # a 16 MiB answer is never tokenized whole
    file = out_dir / f"{split}.jsonl"
    tmp = file.with_name(f".{file.name}.tmp")
    totals = {"examples": 0, "tokens": 0, "target": 0, "truncated": 0, "dropped": 0}
    try:
        with open(tmp, "w") as f:
            for pair in iter_pairs(path):
                tokenized, truncated = tokenize_pair(tokenizer, pair, *lengths, chars)
                totals["truncated"] += truncated
                if tokenized is None:
                    totals["dropped"] += 1
                    continue
                f.write(json.dumps(tokenized.__dict__) + "\n")
                totals["examples"] += 1
                totals["tokens"] += tokenized.tokens
                totals["target"] += len(tokenized.chosen) + len(tokenized.rejected)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not totals["examples"]:
        tmp.unlink(missing_ok=True)
        raise ValidationError(
            f"data.{split} {path}: no pair keeps an answer token after truncation to "
            f"{lengths[0]} (prompt {lengths[1]})",
            "raise parameters.max_seq_length or lower max_prompt_length",
        )
    tmp.replace(file)
    stats = SplitStats(
        file=str(file),
        examples=totals["examples"],
        tokens=totals["tokens"],
        target_tokens=totals["target"],
        truncated=totals["truncated"],
        dropped_no_target=totals["dropped"],
    )
    hooks.log.info(
        "%s: %d pairs, %d tokens (%d answer tokens), %d truncated, %d dropped",
        split, stats.examples, stats.tokens, stats.target_tokens, stats.truncated,
        stats.dropped_no_target,
    )  # fmt: skip
    return stats


def tokenize_pair(
    tokenizer: Any, pair: PreferencePair, max_len: int, max_prompt: int, chars: int
) -> tuple[Pair | None, bool]:
    """``(pair's token ids, truncated)``; None when no answer token fits. Only the last
    ``chars`` characters of the prompt and the first of each answer are tokenized (at least
    ``max_len`` tokens' worth: ``max_len`` times the longest vocabulary entry)."""
    from chattune.data.chat import prepare_messages
    from chattune.train.template import renderer

    render = renderer(tokenizer)
    prompt_text = render(prepare_messages(tokenizer, pair.prompt), True)
    answers = []
    for side in ("chosen", "rejected"):
        full = render(prepare_messages(tokenizer, pair.conversation(side)), False)
        if not full.startswith(prompt_text):
            raise ValidationError(
                f"{pair.where}: the chat template does not render the {side} answer after the "
                "prompt with its generation prompt",
                "use a model whose template renders each turn after the previous ones",
            )
        answers.append(full[len(prompt_text) :])
    prompt_ids = _encode(tokenizer, prompt_text[-chars:])
    truncated = len(prompt_ids) > max_prompt or len(prompt_text) > chars
    prompt_ids = prompt_ids[-max_prompt:]
    room = max_len - len(prompt_ids)
    ids = []
    for text in answers:
        tokens = _encode(tokenizer, text[:chars])
        truncated |= len(tokens) > room or len(text) > chars
        ids.append(tokens[:room])
    if room < 1 or not ids[0] or not ids[1]:
        return None, truncated
    return Pair(prompt_ids, ids[0], ids[1]), truncated


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def read_pairs(path: str | Path) -> list[Pair]:
    """The pairs a preprocess split wrote."""
    with open(path) as f:
        return [Pair(**json.loads(line)) for line in f]


def store_reference_logps(model_dir: str, files: list[Path], hooks: Hooks) -> None:
    """Add the base model's answer log-probs (``ref_chosen``, ``ref_rejected``) to each
    preprocessed pair file, rewritten through a temporary file."""
    from chattune.train.dpo import with_reference
    from chattune.train.scoring import load_model

    model = load_model(model_dir)
    for file in files:
        pairs = with_reference(model, read_pairs(file))
        tmp = file.with_name(f".{file.name}.ref.tmp")
        with open(tmp, "w") as f:
            f.writelines(json.dumps(p.__dict__) + "\n" for p in pairs)
        tmp.replace(file)
        hooks.log.info("reference log-probs of %d pairs stored in %s", len(pairs), file.name)
