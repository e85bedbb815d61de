"""`models export`: merged folder, adapter refusal for merged jobs, GGUF through llama.cpp's
own converter that transformers loads back with the same greedy tokens, Ollama Modelfile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chattune import Client
from chattune.errors import ConflictError
from chattune.registry.export import (
    PROBES,
    export,
    gguf_adds_bos,
    ollama_prompt,
    training_prompt,
)

PROMPTS = ["Hello there", "What is 2+2?", "Write a haiku about the sea"]


def greedy(folder: Path, gguf_file: str | None, tokenizer_dir: Path) -> list[list[int]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs).eval()
    out = []
    for prompt in PROMPTS:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
        out.append(gen[0, ids["input_ids"].shape[1] :].tolist())
    return out


def check_gguf_matches_merged(merged: Path, gguf_dir: Path) -> None:
    (gguf,) = gguf_dir.glob("*.gguf")
    assert gguf.name == "model-f16.gguf"
    assert greedy(gguf_dir, gguf.name, merged) == greedy(merged, None, merged)


def check_modelfile_fidelity(tokenizer_dir: Path, out: Path, adds_bos: bool) -> None:
    from tests.unit.registry.test_modelfile import CONVERSATIONS, parse_modelfile
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    template, system = parse_modelfile((out / "Modelfile").read_text())
    for conversation in [*PROBES, *CONVERSATIONS]:
        got = ollama_prompt(tok, template, system, adds_bos, conversation)
        assert got == training_prompt(tok, conversation)


def test_export_merged_and_gguf_with_modelfile(
    workspace: Path, completed_job: str, tmp_path: Path
) -> None:
    models = Client(workspace).models
    models.register(job=completed_job, name="tiny-chat")
    merged = models.export("tiny-chat", "1", "merged", tmp_path / "merged")
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    out = models.export("tiny-chat", "1", "gguf", tmp_path / "gguf")
    check_gguf_matches_merged(merged, out)

    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model-f16.gguf\n")
    assert re.findall(r'PARAMETER stop "(.*)"', modelfile) == ["<|end|>", "<|endoftext|>"]
    # What llama.cpp reads from the GGUF, and the Modelfile rendered as Ollama renders it.
    assert gguf_adds_bos(out / "model-f16.gguf") is True
    check_modelfile_fidelity(merged, out, adds_bos=True)

    with pytest.raises(ConflictError, match="no LoRA adapter"):
        models.export("tiny-chat", "1", "adapter", tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()
    with pytest.raises(ConflictError, match="not empty"):
        models.export("tiny-chat", "1", "merged", tmp_path / "gguf")


@pytest.mark.slow
def test_smollm2_gguf_matches_the_merged_model(tmp_path: Path) -> None:
    from chattune.catalog import assets

    folder = assets.fetch(["SmolLM2-135M-Instruct"])["SmolLM2-135M-Instruct"]
    out = export(folder, None, "gguf", tmp_path / "gguf", "f16")
    check_gguf_matches_merged(folder, out)
    stops = re.findall(r'PARAMETER stop "(.*)"', (out / "Modelfile").read_text())
    assert stops == ["<|im_end|>"]
    assert gguf_adds_bos(out / "model-f16.gguf") is False
    check_modelfile_fidelity(folder, out, adds_bos=False)
