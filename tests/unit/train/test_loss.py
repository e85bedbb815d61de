"""The chunked cross-entropy equals the model's own loss and gradients, in far less memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chattune.train.finetune import add_lora
from chattune.train.loss import causal_lm_loss, unsupported
from chattune.train.packing import collate
from chattune.train.params import TrainParams
from chattune.train.template import IGNORE, Example


def smollm2_slice():
    """SmolLM2-135M-Instruct's architecture (Llama, tied 49,152-token head), two narrow
    layers, random weights (the loss must match whatever the weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from chattune.catalog import assets

    folder = assets.fetch(["SmolLM2-135M-Instruct"])["SmolLM2-135M-Instruct"]
    config = AutoConfig.from_pretrained(
        folder,
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def tiny_phi3(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def packed_batch(vocab: int, pad: int) -> dict:
    """Two rows: one holding two packed examples, one shorter (padded); masked prompts."""
    import random

    rng = random.Random(0)

    def example(n: int, prompt: int) -> Example:
        ids = [rng.randrange(vocab) for _ in range(n)]
        return Example(ids, [IGNORE] * prompt + ids[prompt:])

    rows = [[example(40, 10), example(30, 12)], [example(50, 20)]]
    return collate(rows, pad)


def both_losses(model, batch, num_items):
    """(plain loss, plain grads, chunked loss, chunked grads) on the same model and batch."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    plain = model(**batch, num_items_in_batch=num_items).loss
    plain.backward()
    plain_grads = [p.grad.clone() for p in params]
    model.zero_grad()
    chunked = causal_lm_loss(model, batch, num_items, chunk_tokens=7)  # several chunks
    chunked.backward()
    return plain, plain_grads, chunked, [p.grad.clone() for p in params]


@pytest.mark.parametrize(
    ("arch", "lora", "num_items"),
    [("phi3", False, None), ("phi3", True, 37), ("smollm2", False, 37), ("smollm2", True, None)],
)
def test_loss_and_gradients_equal_the_models_own(tiny_model_dir, arch, lora, num_items) -> None:
    import torch

    model = tiny_phi3(tiny_model_dir) if arch == "phi3" else smollm2_slice()
    if lora:
        model = add_lora(model, TrainParams(lora_r=4, lora_alpha=8))
    assert unsupported(model) is None
    batch = packed_batch(model.config.vocab_size, pad=0)
    plain, plain_grads, chunked, chunked_grads = both_losses(model, batch, num_items)
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)
    for got, want in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_and_bf16_weights_match_within_bf16(tiny_model_dir) -> None:
    import torch

    model = add_lora(tiny_phi3(tiny_model_dir).to(torch.bfloat16), TrainParams(lora_r=4))
    batch = packed_batch(model.config.vocab_size, pad=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, plain_grads, chunked, chunked_grads = both_losses(model, batch, 100)
    assert chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, plain.float(), rtol=1e-2, atol=1e-3)
    for got, want in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(got.float(), want.float(), rtol=5e-2, atol=1e-3)


def tiny_llama(vocab: int = 32000):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    return LlamaForCausalLM(config)


def saved_for_backward_mb(compute) -> float:
    """Megabytes of distinct tensors autograd keeps for the backward pass of ``compute()``
    (what stays in memory between forward and backward)."""
    import torch

    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        compute().backward()
    return sum(storages.values()) / 1e6


def test_no_full_vocabulary_logits_are_kept_for_backward() -> None:
    """2 rows x 1,024 tokens x 32,000 vocabulary: the model's own loss keeps 262 MB of
    float32 logits until backward; the chunked loss keeps none."""
    import torch

    model = tiny_llama()
    ids = torch.randint(0, 32000, (2, 1024))
    batch = {"input_ids": ids, "labels": ids}
    plain = saved_for_backward_mb(lambda: model(**batch).loss)
    chunked = saved_for_backward_mb(lambda: causal_lm_loss(model, batch))
    assert plain > 262
    assert plain - chunked > 250 and chunked < plain / 10  # the rest: decoder activations
    longer = {"input_ids": torch.cat([ids, ids], 1), "labels": torch.cat([ids, ids], 1)}
    assert saved_for_backward_mb(lambda: causal_lm_loss(model, longer)) < 2.2 * chunked


PEAK_SCRIPT = """
import json, resource, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
from chattune.train.loss import causal_lm_loss
config = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4)
model = LlamaForCausalLM(config)
def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ids = torch.randint(0, 32000, (2, int(sys.argv[1])))
batch = {"input_ids": ids, "labels": ids}
causal_lm_loss(model, {"input_ids": ids[:, :16], "labels": ids[:, :16]}).backward()
before = peak_mb()
causal_lm_loss(model, batch).backward()   # chunked first: ru_maxrss only grows
chunked = peak_mb()
model(**batch).loss.backward()
print(json.dumps({"chunked": chunked - before, "plain": peak_mb() - chunked}))
"""


@pytest.mark.slow
def test_peak_memory_far_below_the_full_logits_path() -> None:
    """Peak RSS of one forward+backward, 2 rows x 2,048 tokens x 32,000 vocabulary (524 MB
    of logits): a fresh process, the chunked loss first (the peak only grows)."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, "2048"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    peak = json.loads(out.stdout.strip().splitlines()[-1])
    assert peak["plain"] > 500  # the test can see the logits
    assert peak["chunked"] < peak["plain"] / 4
