"""oneDNN-prepacked linear layers answer as the plain ones."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from chattune.serving.worker.cpu_linear import PackedLinear, pack_linears


def small_model(dtype: torch.dtype) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_packed_model_gives_the_plain_models_logits(dtype: torch.dtype) -> None:
    model = small_model(dtype)
    ids = torch.randint(0, 300, (3, 11))
    with torch.inference_mode():
        plain = model(input_ids=ids).logits
        assert pack_linears(model, batch_hint=16) == 2 * 7 + 1  # 7 a layer, and lm_head
        packed = model(input_ids=ids).logits
    assert isinstance(model.lm_head, PackedLinear)
    if dtype == torch.bfloat16:
        assert torch.equal(packed, plain)  # oneDNN runs the same kernel, on packed weights
    else:
        torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)


def test_only_plain_linear_layers_are_packed() -> None:
    class Custom(torch.nn.Linear):
        pass

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), Custom(4, 4), torch.nn.Linear(4, 4).half())
    assert pack_linears(model, batch_hint=1) == 1
    assert [type(m).__name__ for m in model] == ["PackedLinear", "Custom", "Linear"]
