"""finetune on tiny-random-phi3, in process: the non-finite watchdog, atomic checkpoints,
resume from the newest complete checkpoint, the run's whole loss, the best model kept."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pytest

from chattune.errors import ValidationError
from chattune.train import finetune, model_import, preprocess
from chattune.train.params import TrainParams
from chattune.train.results import Hooks


class Recorder:
    """Hooks that keep what a stage reports: log lines and metric points."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.points: list[tuple[str, int | None]] = []
        log = logging.getLogger(f"test.finetune.{id(self)}")
        log.setLevel(logging.INFO)
        log.addHandler(self._Handler(self.lines))
        self.hooks = Hooks(log, self._metrics)

    class _Handler(logging.Handler):
        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    def _metrics(self, metrics: dict[str, float], step: int | None) -> None:
        self.points += [(k, step) for k in metrics]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, ultrachat_sample_dir, tiny_model_dir):
    import json

    from chattune.data.readers import load_conversations

    root = tmp_path_factory.mktemp("prep")
    rows = [c.messages for c in load_conversations(str(ultrachat_sample_dir / "data"))]

    for split, part in (("train", rows[:24]), ("test", rows[-8:])):
        with open(root / f"{split}.jsonl", "w") as f:
            for row in part:
                f.write(json.dumps({"messages": row}) + "\n")
    model = model_import.run("tiny-random-phi3", Hooks())
    data = {s: str(root / f"{s}.jsonl") for s in ("train", "test")}
    return model, preprocess.run(model, data, 128, root / "pre", Hooks())


def _params(**kw: object) -> TrainParams:
    base = {"max_steps": 4, "logging_steps": 1, "save_steps": 1, "learning_rate": 1e-3}
    return TrainParams.model_validate(base | kw)


def test_learning_rate_1e30_stops_at_the_first_non_finite_step(prepared, tmp_path) -> None:
    from chattune.train.trainer import NonFiniteLoss

    model, data = prepared
    rec = Recorder()
    with pytest.raises(NonFiniteLoss) as err:
        finetune.run(model, data, _params(learning_rate=1e30), tmp_path, rec.hooks)
    text = str(err.value)
    assert text.startswith("step 2: the training loss is nan (not finite)"), text
    assert "learning_rate 1e+30 too high" in text
    assert not (tmp_path / "final").exists()  # nothing with NaN weights is saved
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-1"]  # the last good checkpoint stays


def test_resume_skips_an_incomplete_checkpoint_and_reports_the_whole_runs_loss(
    prepared, tmp_path
) -> None:
    model, data = prepared
    whole = finetune.run(model, data, _params(), tmp_path / "whole", Recorder().hooks)
    out = tmp_path / "cut"
    finetune.run(model, data, _params(), out, Recorder().hooks)
    shutil.rmtree(out / "final")
    shutil.rmtree(out / "checkpoints" / "checkpoint-4")
    (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").unlink()  # a kill mid-save
    (out / "checkpoints" / ".staging-checkpoint-4").mkdir()  # another one
    rec = Recorder()
    resumed = finetune.run(model, data, _params(), out, rec.hooks, resuming=True)
    assert "checkpoint-3 is incomplete (no readable trainer_state.json): skipped" in rec.lines
    assert "resume: from checkpoint-2 (step 2)" in rec.lines
    assert resumed.resumed_from == str(out / "checkpoints" / "checkpoint-2")
    assert resumed.global_step == whole.global_step == 4
    assert resumed.train_loss == pytest.approx(whole.train_loss, rel=1e-5)
    assert not (out / "checkpoints" / ".staging-checkpoint-4").exists()
    assert (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").exists()  # saved again


def test_resume_from_checkpoint_true_on_a_new_job_starts_from_scratch_with_a_warning(
    prepared, tmp_path
) -> None:
    model, data = prepared
    rec = Recorder()
    tuned = finetune.run(
        model, data, _params(max_steps=1, resume_from_checkpoint=True), tmp_path, rec.hooks
    )
    assert tuned.global_step == 1 and tuned.resumed_from is None
    assert any(
        "no complete checkpoint" in line and "starts from step 0" in line for line in rec.lines
    )


def test_resume_from_a_path_that_is_no_checkpoint_is_one_clear_error(prepared, tmp_path) -> None:
    model, data = prepared
    with pytest.raises(ValidationError, match=r"parameters.resume_from_checkpoint: .* not a comp"):
        finetune.run(model, data, _params(resume_from_checkpoint=str(tmp_path)), tmp_path, Hooks())


@pytest.mark.parametrize("metric", ["loss", "token_accuracy"])
def test_best_model_is_kept_without_early_stopping(prepared, tmp_path, metric) -> None:
    model, data = prepared
    params = _params(evaluation_strategy="steps", eval_steps=1, metric_for_best_model=metric)
    tuned = finetune.run(model, data, params, tmp_path, Recorder().hooks)
    assert tuned.best_checkpoint == str(tmp_path / "checkpoints" / "best")
    import json

    info = json.loads((Path(tuned.best_checkpoint) / "best.json").read_text())
    assert info["metric"] == f"eval_{metric}" and 1 <= info["step"] <= 4


@pytest.mark.parametrize("lora", [True, False], ids=["lora-bf16-weights", "full-autocast"])
def test_bf16_trains_tiny_random_phi3_on_cpu(prepared, tmp_path, lora) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("the CPU path is what this checks")
    model, data = prepared
    rec = Recorder()
    params = _params(precision="bf16", apply_lora=lora)
    tuned = finetune.run(model, data, params, tmp_path, rec.hooks)
    assert tuned.global_step == 4 and math.isfinite(tuned.train_loss)
    assert finetune.bf16_weights(params) is lora and finetune.bf16_autocast(params) is not lora
    assert (tmp_path / "final" / "config.json").exists()


def test_the_chunked_training_loss_is_the_models_own_and_the_log_says_so(
    prepared, tmp_path
) -> None:
    """Same seed, same steps, gradient accumulation (num_items_in_batch): the Trainer with
    the chunked loss trains exactly as with the model's own loss."""
    import torch
    from transformers import AutoTokenizer

    model, data = prepared
    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    params = _params(
        max_steps=1, save_steps=100, evaluation_strategy="no", gradient_accumulation_steps=2
    )
    losses, logs = {}, {}
    for chunked in (True, False):
        rec = Recorder()
        torch.manual_seed(0)
        trainable = finetune.load_trainable(model.model_dir, params, rec.hooks)
        out = tmp_path / str(chunked)
        trainer = finetune.build_trainer(
            trainable, tokenizer, data, params, out, rec.hooks, chunked_loss=chunked
        )
        losses[chunked], logs[chunked] = trainer.train().training_loss, rec.lines
    assert "training loss: chunked cross-entropy" in " ".join(logs[True])
    assert "training loss: the model's own (full logits): turned off" in " ".join(logs[False])
    assert math.isclose(losses[True], losses[False], rel_tol=1e-5)


def test_bf16_lora_on_cpu_multiplies_bf16_activations_into_float32_adapters(
    prepared, tmp_path
) -> None:
    """PEFT casts an adapted layer's input to the adapter's float32 and autograd keeps that
    copy for the backward pass (7 per layer: +1.6 GB on a 2,048-token SmolLM2 step). In
    training, every adapter must see the bf16 activations; its weights and gradients stay
    float32."""
    import torch
    from transformers import AutoTokenizer

    if torch.cuda.is_available():
        pytest.skip("the CPU path is what this checks")
    model, data = prepared
    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    params = _params(precision="bf16", apply_lora=True, max_steps=1)
    trainable = finetune.load_trainable(model.model_dir, params, Recorder().hooks)
    trainer = finetune.build_trainer(trainable, tokenizer, data, params, tmp_path, Hooks())
    seen: list[torch.dtype] = []
    adapters = [m for n, m in trainable.named_modules() if n.endswith("lora_A.default")]
    for adapter in adapters:
        adapter.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    trainer.compute_loss(trainable, batch).backward()
    assert adapters and seen and set(seen) == {torch.bfloat16}
    grads = [m.weight.grad for m in adapters]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert all(m.weight.dtype == torch.float32 for m in adapters)
