"""oneDNN-prepacked linear layers answer as the plain ones; bf16 layers stay plain on CPUs
whose oneDNN cannot pack bf16 (AVX2-only; simulated with ONEDNN_MAX_CPU_ISA=AVX2)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from chattune.serving.worker.cpu_linear import PackedLinear, bf16_packing, pack_linears

# What `make test` on an AVX2-only CPU sees, on any CPU: oneDNN limited to AVX2, and torch's
# own kernels too.
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
NO_BF16_PACKING = "oneDNN packs bf16 weights only with AVX512-BW/VL/DQ or AVX-NE-CONVERT"


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
    if dtype == torch.bfloat16 and not bf16_packing():
        pytest.skip(f"{NO_BF16_PACKING}; this CPU (or ONEDNN_MAX_CPU_ISA) has none")
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


def test_on_an_avx2_only_cpu_bf16_layers_stay_plain_and_answer() -> None:
    """In a process where oneDNN acts as on an AVX2-only CPU: no bf16 packing, the bf16
    model keeps its plain layers and answers as before, float32 layers are still packed."""
    import os
    import subprocess
    import sys

    script = """
import torch
from tests.unit.serving.test_cpu_linear import small_model
from chattune.serving.worker.cpu_linear import bf16_packing, pack_linears
assert torch.backends.cpu.get_cpu_capability() == "AVX2"
assert not bf16_packing()
model = small_model(torch.bfloat16)
ids = torch.randint(0, 300, (2, 5))
with torch.inference_mode():
    plain = model(input_ids=ids).logits
    assert pack_linears(model, batch_hint=4) == 0
    assert torch.equal(model(input_ids=ids).logits, plain)
    assert pack_linears(small_model(torch.float32), batch_hint=4) == 15
print("ok")
"""
    env = {**os.environ, **AVX2_ONLY}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
