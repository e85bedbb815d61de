"""`chattune data` commands and `client.data`, end to end on the fixture sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chattune.cli.data import app
from chattune.client import Client
from chattune.data.schema import DataValidationError
from chattune.errors import NotFoundError

runner = CliRunner()


@pytest.fixture
def ws(tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("CHATTUNE_ULTRACHAT_SAMPLE", str(sample_dir))
    return ["-w", str(tmp_path / "ws")]


def test_download_validate_show(ws: list[str], tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = runner.invoke(
        app, ["download", "ultrachat-sample", "--split-pc", "50", "--out", str(out), *ws]
    )
    assert result.exit_code == 0, result.output
    assert "train_sft" in result.stdout and "test_gen" in result.stdout
    result = runner.invoke(
        app, ["download", "ultrachat-sample", "--split-pc", "50", "--out", str(out), "--json", *ws]
    )
    info = json.loads(result.stdout)
    assert list(info) == ["train_sft", "test_sft", "train_gen", "test_gen"]
    assert info["train_sft"]["path"] == str(out / "train_sft.jsonl")

    result = runner.invoke(app, ["validate", str(out / "train_sft.jsonl"), *ws])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"ok: {out / 'train_sft.jsonl'}: {info['train_sft']['rows']} ")

    plot = tmp_path / "len.png"
    result = runner.invoke(
        app, ["show", str(out / "train_sft.jsonl"), "-n", "1", "--plot", str(plot), *ws]
    )
    assert result.exit_code == 0, result.output
    assert "duplicate prompt_ids" in result.stdout and "conversation 1" in result.stdout
    assert plot.is_file()
    shown = json.loads(
        runner.invoke(app, ["show", str(out / "train_sft.jsonl"), "--json", *ws]).stdout
    )
    assert shown["stats"]["rows"] == info["train_sft"]["rows"]
    assert len(shown["conversations"]) == min(3, shown["stats"]["rows"])


def test_validate_prints_problems_and_exits_3(ws: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "assistant", "content": "x"}]}\n')
    result = runner.invoke(app, ["validate", str(bad), *ws])
    assert result.exit_code == 3  # rows with problems
    assert (
        "error: line 1 of bad.jsonl: messages[0]: the conversation must start with a user turn, "
        "got assistant"
    ) in " ".join(result.stderr.split())
    with pytest.raises(DataValidationError, match="must start with a user turn"):
        Client(workspace=ws[1]).data.validate(bad)  # the SDK raises one error naming all


def test_sdk_show_with_a_model_folder(ws: list[str], tmp_path: Path, sample_dir: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    tokenizer.chat_template = (  # drops system messages, as Phi-3's does
        "{% for m in messages %}{% if m['role'] != 'system' %}{{ m['content'] + ' ' }}{% endif %}"
        "{% endfor %}"
    )
    tokenizer.save_pretrained(tmp_path / "model")
    data = Client(ws[1]).data
    result = data.show(sample_dir, n=0, model_dir=tmp_path / "model")
    assert result["conversations"] == []
    assert result["stats"]["tokens"]["min"] > 0
    assert result["stats"]["system_folded"] == result["stats"]["roles"]["system"]
    with pytest.raises(NotFoundError, match="unknown model 'nope': not in the catalog"):
        data.show(sample_dir, model_dir="nope")


def test_unfetched_sample_says_how_to_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATTUNE_ULTRACHAT_SAMPLE", raising=False)
    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(NotFoundError) as info:
        Client(tmp_path / "ws").data.download("ultrachat-sample", 5, tmp_path / "out")
    assert "'ultrachat-sample'" in info.value.message and "assets fetch" in info.value.hint
    assert not (tmp_path / "out").exists()
