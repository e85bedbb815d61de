"""DPO's loss against a direct computation, and the one-row-per-pair layout against each
answer run as a sequence of its own."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from chattune.train.dpo import answer_logps, pair_losses  # noqa: E402
from chattune.train.dpo_loss import Pair, collate_pairs, dpo_loss, reward_metrics  # noqa: E402

# A fixed batch of four pairs: summed answer log-probs of policy and reference, and lengths.
POLICY_CHOSEN = [-12.5, -40.25, -3.0, -7.75]
POLICY_REJECTED = [-14.0, -38.5, -9.5, -7.75]
REF_CHOSEN = [-13.0, -41.0, -4.5, -8.0]
REF_REJECTED = [-13.5, -39.0, -8.0, -9.0]
CHOSEN_LEN = [5, 17, 2, 4]
REJECTED_LEN = [7, 15, 6, 3]
BETA = 0.1


def direct(loss_type: str) -> list[float]:
    """The papers' formulas, in plain floats."""
    out = []
    for pc, pr, rc, rr, nc, nr in zip(
        POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, CHOSEN_LEN, REJECTED_LEN,
        strict=True,
    ):  # fmt: skip
        if loss_type == "sigmoid":
            d = (pc - rc) - (pr - rr)
            out.append(-math.log(1 / (1 + math.exp(-BETA * d))))
        else:
            d = (pc - rc) / nc - (pr - rr) / nr
            out.append((d - 1 / (2 * BETA)) ** 2)
    return out


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_loss_matches_direct_computation(loss_type: str) -> None:
    t = [
        torch.tensor(v, dtype=torch.float64)
        for v in (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)
    ]
    lengths = (torch.tensor(CHOSEN_LEN), torch.tensor(REJECTED_LEN))
    losses, chosen, rejected = dpo_loss(*t, BETA, loss_type, lengths)
    assert losses.tolist() == pytest.approx(direct(loss_type), abs=1e-5)
    want_chosen = [BETA * (p - r) for p, r in zip(POLICY_CHOSEN, REF_CHOSEN, strict=True)]
    assert chosen.tolist() == pytest.approx(want_chosen, abs=1e-5)
    metrics = reward_metrics(chosen, rejected)
    # rewards chosen 0.05 0.075 0.15 0.025, rejected -0.05 0.05 -0.15 0.125: 3 of 4 pairs
    assert float(metrics["rewards/accuracies"]) == 0.75
    assert float(metrics["rewards/margins"]) == pytest.approx((0.1 + 0.025 + 0.3 - 0.1) / 4)


def test_unknown_loss_type_is_refused_with_the_list() -> None:
    with pytest.raises(ValueError, match="sigmoid, ipo"):
        dpo_loss(*[torch.zeros(1)] * 4, 0.1, "hinge")


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


PAIRS = [
    Pair([5, 6, 7, 8], [9, 10, 11], [12, 13]),
    Pair([20, 21], [22, 23, 24, 25, 26], [27]),
]


def alone(model, prompt: list[int], answer: list[int]) -> float:
    """log p(answer | prompt), the answer run as a sequence of its own."""
    ids = torch.tensor([prompt + answer])
    logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    return sum(float(logps[len(prompt) - 1 + i, t]) for i, t in enumerate(answer))


@pytest.mark.parametrize("chunked", [True, False])
def test_one_row_per_pair_equals_each_answer_alone(chunked: bool) -> None:
    model = tiny_llama()
    batch = collate_pairs(PAIRS, pad_id=0)
    assert batch["input_ids"].shape == (2, 9)  # prompt once: 4 + 3 + 2 and 2 + 5 + 1
    with torch.no_grad():
        sums, counts = answer_logps(model, batch, chunked=chunked)
        want = [alone(model, p.prompt, p.chosen) for p in PAIRS]
        want += [alone(model, p.prompt, p.rejected) for p in PAIRS]
    assert sums.tolist() == pytest.approx(want, abs=1e-4)
    assert counts.tolist() == [3, 5, 2, 1]


def test_untrained_lora_policy_is_its_reference() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules="all-linear"))
    losses, metrics = pair_losses(model, collate_pairs(PAIRS, 0), 0.1, "sigmoid")
    assert losses.tolist() == pytest.approx([math.log(2)] * 2, abs=1e-6)
    assert float(metrics["rewards/margins"]) == 0.0
    losses.mean().backward()  # the adapters get gradients, the base none
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
