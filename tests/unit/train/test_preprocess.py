"""Stage `preprocess`: streaming, long messages cut before tokenizing, batches, workers,
any row format read directly, per-message weights."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from chattune.train import preprocess
from chattune.train.results import Hooks, ImportedModel
from chattune.train.template import (
    IGNORE,
    bound_messages,
    max_token_chars,
    tokenize_batch,
    tokenize_conversation,
)

U = {"role": "user", "content": "Tell me about the sea."}


def _model(tiny_model_dir: Path) -> ImportedModel:
    return ImportedModel(
        model_dir=str(tiny_model_dir),
        model="tiny-random-phi3",
        model_type="phi3",
        context_length=4096,
    )


def _rows(path: Path) -> list[dict[str, list[int]]]:
    return [vars(ex) for ex in preprocess.read_examples(path)]


def test_long_messages_are_cut_to_what_max_len_can_hold(tiny_tokenizer) -> None:
    long = {"role": "assistant", "content": "wave after wave, " * 3000}  # 51k chars
    conv = [U, long, U, {"role": "assistant", "content": "short"}]
    max_len = 64
    bound = max_len * max_token_chars(tiny_tokenizer)
    cut, was_cut = bound_messages(conv, bound)
    assert was_cut and len(cut) == 2 and len(cut[1]["content"]) < bound
    # Cutting changes nothing inside the first max_len tokens.
    full = tokenize_conversation(tiny_tokenizer, conv, max_len=max_len)
    assert tokenize_conversation(tiny_tokenizer, cut, max_len=max_len) == full
    assert bound_messages(conv[:1], bound) == (conv[:1], False)


def test_a_batch_equals_one_by_one_and_weight_0_is_not_trained(tiny_tokenizer) -> None:
    convs = [
        [
            U,
            {"role": "assistant", "content": f"Answer {i}."},
            U,
            {"role": "assistant", "content": "Bye."},
        ]
        for i in range(5)
    ]
    assert tokenize_batch(tiny_tokenizer, convs) == [
        tokenize_conversation(tiny_tokenizer, c) for c in convs
    ]
    weighted = [U, {**convs[0][1], "weight": 0}, *convs[0][2:]]
    ex = tokenize_conversation(tiny_tokenizer, weighted)
    trained = tiny_tokenizer.decode(
        [t for t, x in zip(ex.input_ids, ex.labels, strict=True) if x != IGNORE]
    )
    assert "Bye." in trained and "Answer 0." not in trained
    assert ex.input_ids == tokenize_conversation(tiny_tokenizer, convs[0]).input_ids


def test_a_huge_row_costs_no_time_or_memory(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATTUNE_PREPROCESS_PROCS", "1")
    huge = "x" * 20_000_000  # 20 MB in one assistant message
    path = tmp_path / "t.jsonl"
    with path.open("w") as f:
        f.write(json.dumps([U, {"role": "assistant", "content": "Calm."}]) + "\n")
        f.write(json.dumps([U, {"role": "assistant", "content": huge}]) + "\n")
    del huge
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()  # CPU seconds: the machine may be shared
    out = preprocess.run(_model(tiny_model_dir), {"train": str(path)}, 256, tmp_path / "p", Hooks())
    elapsed = time.process_time() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 15, elapsed  # uncut: ~95 s and 2 GB to render + tokenize 20 MB
    assert grown_mb < 400, grown_mb
    stats = out.splits["train"]
    assert (stats.examples, stats.truncated) == (2, 1)
    assert [len(r["input_ids"]) for r in _rows(Path(stats.file))][1] == 256


def test_workers_write_the_same_examples_in_order(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.jsonl"
    with path.open("w") as f:
        for i in range(700):
            f.write(json.dumps([U, {"role": "assistant", "content": f"Answer number {i}."}]) + "\n")
    results = {}
    for procs in ("1", "2"):
        monkeypatch.setenv("CHATTUNE_PREPROCESS_PROCS", procs)
        out = preprocess.run(
            _model(tiny_model_dir), {"train": str(path)}, 64, tmp_path / procs, Hooks()
        )
        results[procs] = _rows(Path(out.splits["train"].file))
    assert len(results["1"]) == 700 and results["1"] == results["2"]


def test_any_format_is_read_directly(tiny_model_dir: Path, tmp_path: Path) -> None:
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi!"}]))
    out = preprocess.run(
        _model(tiny_model_dir), {"train": str(alpaca)}, 64, tmp_path / "p", Hooks()
    )
    row = _rows(Path(out.splits["train"].file))[0]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.decode(row["input_ids"]).replace(" \n", "\n")
    assert text == "<s><|user|>\nSay hi.<|end|>\n<|assistant|>\nHi!<|end|>\n"


@pytest.mark.parametrize("max_len", [32, 512])
def test_tokenizing_a_prefix_first_gives_the_full_texts_first_tokens(
    tiny_tokenizer, ultrachat_sample_dir: Path, max_len: int
) -> None:
    import pyarrow.parquet as pq

    from chattune.train.template import prepare_messages

    table = pq.read_table(next((ultrachat_sample_dir / "data").glob("train_sft-*.parquet")))
    convs = [row["messages"] for row in table.slice(0, 150).to_pylist()]
    got = tokenize_batch(tiny_tokenizer, convs, max_len)
    render = tiny_tokenizer.apply_chat_template
    for conv, ex in zip(convs, got, strict=True):
        conv = prepare_messages(tiny_tokenizer, conv)
        text = render(conv, tokenize=False)
        spans = [
            (
                len(render(conv[:i], tokenize=False, add_generation_prompt=True)),
                len(render(conv[: i + 1], tokenize=False)),
            )
            for i, m in enumerate(conv)
            if m["role"] == "assistant"
        ]
        enc = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        labels = [
            t if any(a <= s < b for a, b in spans) and e > s else IGNORE
            for t, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
        assert ex.input_ids == enc["input_ids"][:max_len]
        assert ex.labels == labels[:max_len]


@pytest.mark.parametrize("content", ["数据训练 " * 400, "🙂🚀 " * 500, "x" * 9000, "ab " * 3000])
def test_text_with_few_characters_per_token_is_retried_until_its_first_tokens_are_exact(
    tiny_tokenizer, content: str
) -> None:
    """Prefixes sized from characters per token must still give the full text's first tokens
    when a character is a token or more (CJK, emoji) or many (one long run)."""
    conv = [{"role": "user", "content": content}, {"role": "assistant", "content": content}]
    [ex] = tokenize_batch(tiny_tokenizer, [conv], 300)
    [whole] = tokenize_batch(tiny_tokenizer, [conv], None)
    assert ex.input_ids == whole.input_ids[:300] and ex.labels == whole.labels[:300]


def test_a_bad_row_late_in_the_file_leaves_no_partial_output(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from chattune.data.schema import DataValidationError

    path = tmp_path / "t.jsonl"
    good = json.dumps([U, {"role": "assistant", "content": "Calm."}]) + "\n"
    path.write_text(good * 600 + json.dumps([U]) + "\n")
    with pytest.raises(DataValidationError, match=r"line 601 of t\.jsonl: messages: no assistant"):
        preprocess.run(_model(tiny_model_dir), {"train": str(path)}, 64, tmp_path / "p", Hooks())
    assert list((tmp_path / "p").iterdir()) == []


def test_the_direct_renderer_is_the_chat_template(
    tiny_tokenizer, ultrachat_sample_dir: Path
) -> None:
    import pyarrow.parquet as pq

    from chattune.train.template import prepare_messages, renderer

    render = renderer(tiny_tokenizer)
    assert render.__name__ == "fast"  # Phi-3's template renders straight
    table = pq.read_table(next((ultrachat_sample_dir / "data").glob("train_sft-*.parquet")))
    for row in table.slice(0, 100).to_pylist():
        conv = prepare_messages(tiny_tokenizer, row["messages"])
        for n in range(1, len(conv) + 1):
            for generation in (False, True):
                expected = tiny_tokenizer.apply_chat_template(
                    conv[:n], tokenize=False, add_generation_prompt=generation
                )
                assert render(conv[:n], generation) == expected
