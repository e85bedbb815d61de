"""Stages `finetune` and `evaluate` for ``method: dpo``, read top to bottom like the SFT
ones (:mod:`chattune.train.finetune`, :mod:`chattune.train.evaluate`), whose parts they reuse:
load (LoRA or full) → train on pairs (checkpoints, resume, best model, metrics) → save;
then base (= the reference) vs tuned on the test pairs.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, cast

from chattune.train import finetune as sft
from chattune.train import report
from chattune.train.dpo import DPOTrainer, score_pairs, with_reference
from chattune.train.dpo_loss import collate_pairs
from chattune.train.params import TrainParams
from chattune.train.preference import read_pairs
from chattune.train.results import Evaluation, FineTuned, Hooks, ImportedModel, Preprocessed


def finetune(
    model: ImportedModel,
    data: Preprocessed,
    p: TrainParams,
    out_dir: Path,
    hooks: Hooks,
    resuming: bool = False,
) -> FineTuned:
    """Preference-tune on the train pairs; the final model is saved as SFT's is."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(p.seed)
    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    start = sft.resume_point(p, resuming, out_dir / "checkpoints", hooks)
    loss_before = (start.loss_sum() or 0.0) if start else 0.0
    trainer = build_trainer(model, tokenizer, data, p, out_dir, hooks, loss_before)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(start.path) if start else None)
    best = trainer.load_best()
    steps_now = result.global_step - (start.step if start else 0)
    train_loss = (loss_before + result.training_loss * steps_now) / max(result.global_step, 1)
    hooks.log.info(
        "trained %d steps in %.1fs, train loss %.4f%s",
        result.global_step,
        time.time() - started,
        train_loss,
        f"; best model: {best}" if best else "",
    )
    final = out_dir / "final"
    sft.save_final(trainer.model, tokenizer, final, p)
    return FineTuned(
        final_model=str(final),
        adapter_only=p.apply_lora and not p.merge_lora_weights,
        base_model_dir=model.model_dir,
        checkpoints_dir=str(out_dir / "checkpoints"),
        best_checkpoint=best,
        global_step=result.global_step,
        train_loss=train_loss,
        train_rows=len(cast(list[Any], trainer.train_dataset)),
        resumed_from=str(start.path) if start else None,
    )


def build_trainer(
    model: ImportedModel,
    tokenizer: Any,
    data: Preprocessed,
    p: TrainParams,
    out_dir: Path,
    hooks: Hooks,
    loss_sum_before: float = 0.0,
) -> DPOTrainer:
    """A :class:`DPOTrainer` over the preprocessed pairs, with SFT's arguments and callbacks."""
    from transformers import EarlyStoppingCallback

    policy = sft.load_trainable(model.model_dir, p, hooks)
    train = read_pairs(data.splits["train"].file)
    eval_split = "validation" if "validation" in data.splits else "test"
    has_eval = eval_split in data.splits and p.evaluation_strategy != "no"
    evals = read_pairs(data.splits[eval_split].file) if has_eval else None
    reference = None
    if not p.apply_lora and train[0].ref_chosen is None:  # full: a frozen copy
        reference = frozen_copy(model.model_dir, p)
        hooks.log.info("reference: a frozen copy of the base model")
    else:
        how = "precomputed log-probs" if train[0].ref_chosen is not None else "adapter disabled"
        hooks.log.info("reference: the base model (%s)", how)
    args = sft.training_arguments(p, out_dir / "checkpoints", has_eval=evals is not None)
    callbacks: list[Any] = [sft.MetricsCallback(hooks)]
    if p.apply_early_stopping and evals is not None:
        callbacks.append(
            EarlyStoppingCallback(p.early_stopping_patience, p.early_stopping_threshold)
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = DPOTrainer(
        model=policy,
        args=args,
        train_dataset=train,
        eval_dataset=evals,
        data_collator=lambda batch: collate_pairs(batch, pad),
        callbacks=callbacks,
        loss_sum_before=loss_sum_before,
        adapter_autocast=sft.bf16_weights(p) and p.apply_lora and not sft.ddp_backend(),
        keep_checkpoints=None if p.save_total_limit < 0 else p.save_total_limit,
        beta=p.beta,
        loss_type=p.loss_type,
        reference_model=reference,
    )
    hooks.log.info("training loss: %s", trainer.loss_note)
    return trainer


def frozen_copy(model_dir: str, p: TrainParams) -> Any:
    """The base model, frozen, in the training dtype: full fine-tuning's reference."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if sft.bf16_weights(p) else torch.float32
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    reference.requires_grad_(False)
    return reference


METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
           "rewards/accuracies", "logps_accuracy")  # fmt: skip


def evaluate(
    data: Preprocessed, tuned: FineTuned, p: TrainParams, hooks: Hooks, out_dir: Path
) -> Evaluation:
    """The DPO metrics on the test pairs: tuned against the reference, and the base (=
    the reference: loss log 2, rewards 0) for the same table; ``logps_accuracy`` (chosen
    likelier than rejected) compares base and tuned without a reference."""
    from chattune.train.scoring import load_model

    if "test" not in data.splits:
        hooks.log.info("no data.test: nothing to evaluate")
        return Evaluation(skipped="no test data")
    dtype = "bfloat16" if p.precision == "bf16" else "float32"
    base_model = load_model(tuned.base_model_dir, dtype=dtype)
    pairs = with_reference(base_model, read_pairs(data.splits["test"].file))
    base = score_pairs(base_model, pairs, p.per_device_eval_batch_size, p.beta, p.loss_type)
    del base_model
    gc.collect()
    adapter_base = tuned.base_model_dir if tuned.adapter_only else None
    fine_model = load_model(tuned.final_model, adapter_base, dtype=dtype)
    fine = score_pairs(fine_model, pairs, p.per_device_eval_batch_size, p.beta, p.loss_type)
    del fine_model
    metrics = {f"test_{k}": v for k, v in fine.items()}
    metrics |= {f"base_test_{k}": v for k, v in base.items()}
    hooks.metrics(metrics, None)
    for name in METRICS:
        hooks.log.info("%s: base %.4f -> tuned %.4f", name, base[name], fine[name])
    answers = sum(len(x.chosen) + len(x.rejected) for x in pairs)
    facts = {"test": {"split": "test", "examples": len(pairs), "tokens": answers}}
    json_path, md_path = report.write(report.build(base, fine, facts, []), out_dir)
    return Evaluation(
        metrics=metrics,
        examples=len(pairs),
        report_json=str(json_path),
        report_markdown=str(md_path),
    )
