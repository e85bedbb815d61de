"""Per-row logit bias and penalties (:mod:`chattune.serving.worker.logits`): the arithmetic
on a hand-made step, then on the tiny real model in both transformers engines."""

from __future__ import annotations

import pytest
import torch

from chattune.serving.worker.engines import GenerationParams, RequestRefused
from chattune.serving.worker.logits import Row, adjust, check_bias


def test_each_row_gets_its_own_bias_and_penalties() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.0]] * 4)
    rows = [
        Row(GenerationParams(), [0], [1, 1]),  # nothing asked: untouched
        Row(GenerationParams(logit_bias=((0, -100.0), (3, 5.0))), [], []),
        Row(GenerationParams(frequency_penalty=0.5, presence_penalty=1.0), [2], [1, 1, 3]),
        Row(GenerationParams(repetition_penalty=2.0), [0], [1]),  # prompt and answer tokens
    ]
    out = adjust(logits, rows)
    assert out[0].tolist() == [2.0, -1.0, 0.5, 1.0]
    assert out[1].tolist() == [-98.0, -1.0, 0.5, 6.0]
    assert out[2].tolist() == [2.0, -1.0 - 1.0 - 1.0, 0.5, 1.0 - 0.5 - 1.0]
    assert out[3].tolist() == [1.0, -2.0, 0.5, 1.0]
    assert logits[1, 0] == 2.0  # the model's logits are kept for logprobs
    assert adjust(logits, [Row(GenerationParams(), [], [])] * 4) is logits


def test_a_bias_on_a_token_the_model_lacks_is_refused() -> None:
    check_bias(GenerationParams(logit_bias=((9, 1.0),)), 10)
    with pytest.raises(RequestRefused, match="logit_bias: token id 10 is not in the model"):
        check_bias(GenerationParams(logit_bias=((10, 1.0),)), 10)
