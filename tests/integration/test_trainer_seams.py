"""The guarantees ChattuneTrainer keeps through public seams (callbacks, public overrides):
a non-finite gradient norm stops the run before that step is saved, early stopping's state
is in each checkpoint, the best weights load back into the model, every checkpoint is marked
complete."""

from __future__ import annotations

import json

import pytest

from chattune.train import finetune
from tests.integration.test_finetune_guards import Recorder, _params, prepared  # noqa: F401


def test_an_infinite_gradient_norm_stops_before_its_step_is_saved(prepared, tmp_path) -> None:  # noqa: F811
    import torch
    from transformers import AutoTokenizer

    from chattune.train.trainer import NonFiniteLoss

    model, data = prepared
    params = _params(max_steps=3, evaluation_strategy="no", logging_steps=50)  # save every step
    trainable = finetune.load_trainable(model.model_dir, params, Recorder().hooks)
    adapter = next(p for n, p in trainable.named_parameters() if p.requires_grad)
    adapter.register_hook(lambda g: torch.full_like(g, float("inf")))  # the loss stays finite
    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    trainer = finetune.build_trainer(trainable, tokenizer, data, params, tmp_path, Recorder().hooks)
    with pytest.raises(NonFiniteLoss, match=r"^step 1: the gradient norm is (inf|nan)"):
        trainer.train()
    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_early_stopping_state_is_checkpointed_and_best_weights_load_back(
    prepared,  # noqa: F811
    tmp_path,
    lora,
) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from chattune.train.trainer import load_weights

    model, data = prepared
    params = _params(
        max_steps=3,
        apply_lora=lora,
        evaluation_strategy="steps",
        eval_steps=1,
        apply_early_stopping=True,
        early_stopping_patience=10,
    )
    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    trainable = finetune.load_trainable(model.model_dir, params, Recorder().hooks)
    trainer = finetune.build_trainer(trainable, tokenizer, data, params, tmp_path, Recorder().hooks)
    trainer.train()
    state = json.loads(
        (tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text()
    )
    assert "patience_counter" in json.dumps(state["stateful_callbacks"]["EarlyStoppingCallback"])
    for step in (1, 2, 3):
        assert (tmp_path / "checkpoints" / f"checkpoint-{step}" / "chattune_state.json").exists()
    best = tmp_path / "checkpoints" / "best"
    saved = load_file(next(best.glob("*.safetensors")))
    with torch.no_grad():
        for p in trainable.parameters():
            p.add_(1.0)  # away from every saved state
    load_weights(trainable, best)
    # an adapter file names lora_A.weight what the PEFT model calls lora_A.default.weight
    now = {n.replace(".default.", "."): p for n, p in trainable.named_parameters()}
    assert saved and set(saved) <= set(now)
    for key, value in saved.items():
        assert torch.equal(now[key].detach(), value.to(now[key].dtype)), key
