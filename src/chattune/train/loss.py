"""Chunked causal-LM cross-entropy: no full-vocabulary logits for the whole batch.

The model's own loss computes ``lm_head`` on every position of every row and keeps those
logits (rows x length x vocabulary floats, 400 MB per 2,048-token SmolLM2 row in float32)
until the backward pass: peak memory then grows with the vocabulary times the tokens.
Here the decoder's final hidden states go through the output projection in chunks of
target tokens (only positions whose next-token label is not -100), and each chunk is
recomputed in the backward pass (``torch.utils.checkpoint``), so at most one chunk's logits
exist at any time. The sum of token losses, divided by ``num_items_in_batch`` when the
Trainer gives it (else by the count of target tokens), equals the model's own loss.
"""

from __future__ import annotations

import inspect
from typing import Any

IGNORE = -100
CHUNK_ELEMENTS = 1 << 24
"""Logit elements per chunk (64 MiB of float32): chunk tokens = this / vocabulary size."""


def unsupported(model: Any) -> str | None:
    """Why the chunked loss cannot stand in for ``model``'s own loss; None when it can."""
    base = causal_lm(model)
    config = getattr(base, "config", None)
    for knob in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(config, knob, None) not in (None, 1, 1.0):
            return f"the model's config sets {knob} (logits are not plain lm_head outputs)"
    if getattr(base, "get_decoder", None) is None or base.get_output_embeddings() is None:
        return "the model has no decoder and output projection to split the loss between"
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return "the model's forward takes no logits_to_keep"
    return None


def causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` module under PEFT, DDP or DeepSpeed wrappers."""
    while True:
        if hasattr(model, "module") and not hasattr(model, "lm_head"):
            model = model.module  # DDP / DeepSpeed engine
        elif hasattr(model, "get_base_model"):
            model = model.get_base_model()  # PEFT
        else:
            return model


def causal_lm_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None, chunk_tokens: int = 0
) -> Any:
    """The causal-LM loss of ``model`` on ``inputs`` (which hold ``labels``), in chunks.

    ``model`` is called as the Trainer calls it (wrappers, autocast and all) but asked for
    one position's logits; the decoder's output is caught on its way to ``lm_head``.
    """
    base = causal_lm(model)
    caught: list[Any] = []
    hook = base.get_decoder().register_forward_hook(lambda _m, _a, out: caught.append(out[0]))
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    try:
        model(**kwargs, logits_to_keep=1, use_cache=False)
    finally:
        hook.remove()
    head = base.get_output_embeddings()
    if not chunk_tokens:
        chunk_tokens = max(1, CHUNK_ELEMENTS // head.weight.shape[0])
    return chunked_cross_entropy(
        caught[-1], inputs["labels"], head, num_items_in_batch, chunk_tokens
    )


def chunked_cross_entropy(
    hidden: Any, labels: Any, head: Any, num_items_in_batch: Any, chunk_tokens: int
) -> Any:
    """Sum of next-token cross-entropies of ``head(hidden)`` against ``labels`` (shifted by
    one, -100 ignored) over ``num_items_in_batch``, or their mean when that is None.

    Exactly what transformers' ``ForCausalLMLoss`` computes (float32 cross-entropy of the
    logits), one chunk of ``chunk_tokens`` target positions at a time.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    target = labels[:, 1:].to(hidden.device)
    keep = target != IGNORE
    states = hidden[:, :-1][keep]  # only positions with a target need logits
    wanted = target[keep]
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, wanted.shape[0], chunk_tokens):
        end = start + chunk_tokens
        total = total + checkpoint(
            _chunk_loss, states[start:end], wanted[start:end], head, use_reentrant=False
        )
    if num_items_in_batch is None:
        return total / keep.sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _chunk_loss(states: Any, wanted: Any, head: Any) -> Any:
    import torch

    logits = head(states).float()
    return torch.nn.functional.cross_entropy(logits, wanted, reduction="sum")
