"""Stage `finetune`: LoRA or full fine-tuning with the transformers Trainer.

Read top to bottom: load → wrap with LoRA → pack → train (checkpoints, eval, early stopping,
metrics to MLflow) → save the final model (merged when ``merge_lora_weights``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from chattune.errors import ValidationError
from chattune.train.checkpoints import (
    Checkpoint,
    is_complete,
    newest_complete,
    remove_incomplete,
    remove_staging,
    step_of,
)
from chattune.train.packing import PackedRows, collate
from chattune.train.params import TrainParams
from chattune.train.preprocess import read_examples
from chattune.train.results import FineTuned, Hooks, ImportedModel, Preprocessed
from chattune.train.template import Example


def run(
    model: ImportedModel,
    data: Preprocessed,
    p: TrainParams,
    out_dir: Path,
    hooks: Hooks,
    resuming: bool = False,
) -> FineTuned:
    """Train on the preprocessed train split; resume from the last checkpoint when asked."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(p.seed)
    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    checkpoints = out_dir / "checkpoints"
    start = resume_point(p, resuming, checkpoints, hooks)
    loss_before = (start.loss_sum() or 0.0) if start else 0.0
    trainer = build_trainer(
        load_trainable(model.model_dir, p, hooks), tokenizer, data, p, out_dir, hooks, loss_before
    )
    if trainer.args.world_size > 1:
        state = trainer.accelerator.state
        hooks.log.info(
            "parallel: %s over %d processes (%s)",
            state.distributed_type.value,
            trainer.args.world_size,
            trainer.args.ddp_backend or "default backend",
        )
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(start.path) if start else None)
    best = trainer.load_best()
    # transformers reports the loss of this train() call only; a resumed run's loss is over
    # all its steps: the sum recorded in the checkpoint plus this call's.
    steps_now = result.global_step - (start.step if start else 0)
    train_loss = (loss_before + result.training_loss * steps_now) / max(result.global_step, 1)
    hooks.log.info(
        "trained %d steps in %.1fs, train loss %.4f%s",
        result.global_step,
        time.time() - started,
        train_loss,
        f"; best model: {best} ({trainer.args.metric_for_best_model})" if best else "",
    )
    final = out_dir / "final"
    if p.sharded_weights:
        save_gathered(trainer, tokenizer, final, p, model.model_dir)
    elif trainer.is_world_process_zero():  # one writer of the final model
        save_final(trainer.model, tokenizer, final, p)
    return FineTuned(
        final_model=str(final),
        adapter_only=p.apply_lora and not p.merge_lora_weights,
        base_model_dir=model.model_dir,
        checkpoints_dir=str(checkpoints),
        best_checkpoint=best,
        global_step=result.global_step,
        train_loss=train_loss,
        train_rows=len(trainer.train_dataset),
        resumed_from=str(start.path) if start else None,
    )


def resume_point(
    p: TrainParams, resuming: bool, checkpoints: Path, hooks: Hooks
) -> Checkpoint | None:
    """The checkpoint training continues from: a path the spec names, else the newest complete
    one when resuming (``jobs resume``, or ``resume_from_checkpoint: true``), else None."""
    remove_staging(checkpoints)
    if isinstance(p.resume_from_checkpoint, str):
        folder = Path(p.resume_from_checkpoint)
        if not is_complete(folder):
            raise ValidationError(
                f"parameters.resume_from_checkpoint: {folder} is not a complete checkpoint "
                "(no readable trainer_state.json)",
                "name a checkpoint-N folder of an earlier job, or set it to true",
            )
        return Checkpoint(folder, step_of(folder))
    if not (resuming or p.resume_from_checkpoint):
        return None
    start = newest_complete(checkpoints, hooks.log)
    remove_incomplete(checkpoints)
    if start is None:
        hooks.log.warning(
            "resume: no complete checkpoint in %s yet; training starts from step 0", checkpoints
        )
    else:
        hooks.log.info("resume: from %s (step %d)", start.name, start.step)
    return start


def load_trainable(model_dir: str, p: TrainParams, hooks: Hooks) -> Any:
    """The model in the training dtype, wrapped with LoRA when ``apply_lora``."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if bf16_weights(p) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if p.apply_lora:
        model = add_lora(model, p)
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    total = sum(t.numel() for t in model.parameters())
    hooks.log.info(
        "trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total
    )
    return model


def build_trainer(
    model: Any,
    tokenizer: Any,
    data: Preprocessed,
    p: TrainParams,
    out_dir: Path,
    hooks: Hooks,
    loss_sum_before: float = 0.0,
    chunked_loss: bool = True,
) -> Any:
    """A Trainer over packed rows (watchdog, atomic checkpoints, best model, evaluation by
    train/scoring.py's score(), chunked loss), with metrics and early stopping callbacks."""
    from transformers import EarlyStoppingCallback

    from chattune.train.trainer import ChattuneTrainer

    max_len = data.max_seq_length
    # Memory-mapped: each rank reads only the rows its batches take.
    train_rows = rows(read_examples(data.splits["train"].file), max_len, p.packing)
    eval_split = "validation" if "validation" in data.splits else "test"
    eval_rows = None
    if eval_split in data.splits and p.evaluation_strategy != "no":
        eval_rows = rows(read_examples(data.splits[eval_split].file), max_len, p.packing)
    args = training_arguments(p, out_dir / "checkpoints", has_eval=eval_rows is not None)
    callbacks: list[Any] = [MetricsCallback(hooks)]
    if p.apply_early_stopping and eval_rows is not None:
        callbacks.append(
            EarlyStoppingCallback(p.early_stopping_patience, p.early_stopping_threshold)
        )
    accuracy = p.metric_for_best_model == "token_accuracy" and eval_rows is not None
    trainer = ChattuneTrainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        data_collator=lambda batch: collate(batch, tokenizer.pad_token_id),
        callbacks=callbacks,
        compute_metrics=token_accuracy if accuracy else None,
        preprocess_logits_for_metrics=predicted_tokens if accuracy else None,
        loss_sum_before=loss_sum_before,
        chunked_loss=chunked_loss,
        adapter_autocast=bf16_weights(p) and p.apply_lora and not _cuda(),
        keep_checkpoints=None if p.save_total_limit < 0 else p.save_total_limit,
        sharded_weights=p.sharded_weights,
    )
    hooks.log.info("training loss: %s", trainer.loss_note)
    return trainer


def predicted_tokens(logits: Any, _labels: Any) -> Any:
    """Keep only the argmax of each position (the eval loop would otherwise hold all logits)."""
    return logits.argmax(-1)


def token_accuracy(prediction: Any) -> dict[str, float]:
    """Next-token accuracy on assistant tokens: what ``evaluate`` reports as token_accuracy."""

    predicted, labels = prediction.predictions[:, :-1], prediction.label_ids[:, 1:]
    keep = labels != -100
    return {"token_accuracy": float((predicted == labels)[keep].sum() / max(int(keep.sum()), 1))}


def rows(examples: Sequence[Example], max_len: int, packing: bool) -> PackedRows:
    """Training rows: packed groups of examples, or one example per row (read on demand)."""
    return PackedRows.of(examples, max_len, packing)


def add_lora(model: Any, p: TrainParams) -> Any:
    """Wrap ``model`` with LoRA adapters (Phi-3's fused qkv_proj/gate_up_proj included)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=p.lora_r,
        lora_alpha=p.lora_alpha,
        lora_dropout=p.lora_dropout,
        target_modules=p.lora_target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def training_arguments(p: TrainParams, output_dir: Path, has_eval: bool) -> Any:
    """Map the job's parameters onto transformers' TrainingArguments."""
    from transformers import TrainingArguments

    eval_strategy = p.evaluation_strategy if has_eval else "no"
    # Whenever evaluation runs, the trainer tracks the best model and keeps its weights
    # (ChattuneTrainer's best/), so checkpoints keep their own schedule for resuming.
    best = eval_strategy != "no"
    metric = "loss" if p.metric_for_best_model == "perplexity" else p.metric_for_best_model
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=p.num_train_epochs,
        max_steps=p.max_steps,
        per_device_train_batch_size=p.per_device_train_batch_size,
        per_device_eval_batch_size=p.per_device_eval_batch_size,
        gradient_accumulation_steps=p.gradient_accumulation_steps,
        learning_rate=p.learning_rate,
        lr_scheduler_type=p.lr_scheduler_type,
        warmup_steps=p.warmup_steps,
        optim=p.optim,
        weight_decay=p.weight_decay,
        adam_beta1=p.adam_beta1,
        adam_beta2=p.adam_beta2,
        adam_epsilon=p.adam_epsilon,
        max_grad_norm=p.max_grad_norm,
        bf16=bf16_autocast(p),
        fp16=p.precision == "16",
        seed=p.seed,
        eval_strategy=eval_strategy,
        eval_steps=p.eval_steps,
        logging_steps=p.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=p.save_steps,
        save_total_limit=None,  # ChattuneTrainer rotates, once the new checkpoint is complete
        load_best_model_at_end=False,
        metric_for_best_model=f"eval_{metric}" if best else None,  # perplexity ranks as loss
        greater_is_better=(metric == "token_accuracy") if best else None,
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="all",
        deepspeed=deepspeed_config(p) if p.apply_deepspeed else None,
        **fsdp_arguments(p),
        ddp_backend=ddp_backend(),
        # gloo: else accelerate sees no DDP on CPU (no grad sync); bf16: else it wants a GPU
        use_cpu=ddp_backend() == "gloo" or (p.precision == "bf16" and not _cuda()),
    )


def deepspeed_config(p: TrainParams) -> dict[str, Any]:
    """DeepSpeed ZeRO stage 2 or 3; "auto" lets the Trainer fill batch, precision and clip."""
    zero: dict[str, Any] = {"stage": p.deepspeed_stage, "overlap_comm": True}
    if p.deepspeed_stage == 3:  # save_model gathers whole 16-bit weights (packaging reads them)
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
    }


def fsdp_arguments(p: TrainParams) -> dict[str, Any]:
    """FSDP through accelerate (TrainingArguments ``fsdp``/``fsdp_config``): each decoder
    layer its own unit; whole weights gathered on rank 0 when a model is saved."""
    if not p.fsdp:
        return {}
    return {
        "fsdp": f"{p.fsdp_sharding} auto_wrap",
        "fsdp_config": {
            "transformer_layer_cls_to_wrap": None,  # the model's _no_split_modules
            "use_orig_params": True,  # LoRA: frozen and trainable parameters in one unit
            "state_dict_type": "FULL_STATE_DICT",
            "cpu_ram_efficient_loading": False,
            "sync_module_states": False,
        },
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16_weights(p: TrainParams) -> bool:
    """The model is loaded in bf16: on a GPU for bf16; on a CPU for bf16 with LoRA, where the
    frozen base in bf16 runs about 2x float32 and the adapters keep float32 master weights
    (PEFT's default), computed in bf16 (ChattuneTrainer's ``adapter_autocast``).
    Full fine-tuning on a CPU keeps float32 weights under autocast: bf16 weights would lose
    updates smaller than their precision (benchmarks/bf16_cpu.py, README)."""
    return p.precision == "bf16" and (_cuda() or p.apply_lora)


def bf16_autocast(p: TrainParams) -> bool:
    """The Trainer's bf16 autocast: on a GPU, and for full fine-tuning on a CPU."""
    return p.precision == "bf16" and (_cuda() or not p.apply_lora)


def ddp_backend() -> str | None:
    """gloo when several CPU processes train together (torchrun without GPUs), else default."""
    import os

    import torch

    many = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return "gloo" if many and not torch.cuda.is_available() else None


def save_final(model: Any, tokenizer: Any, out: Path, p: TrainParams) -> None:
    """Save a loadable model folder: merged weights, or the adapter alone, plus the tokenizer.

    Weights keep the training dtype: rounding merged fp32 weights to bf16 would erase part
    of the small LoRA update that evaluation just measured. Weights that are not all finite
    are never written (nothing with NaN weights gets packaged).
    """
    import torch

    from chattune.train.trainer import NonFiniteLoss

    bad = [n for n, t in model.named_parameters() if not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteLoss(
            f"the trained model has {len(bad)} weight tensors with NaN or infinite values "
            f"(first: {bad[0]}); not saved",
            "lower learning_rate and create the job again",
        )
    if p.apply_lora and p.merge_lora_weights:
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.save_pretrained(out)


def save_gathered(
    trainer: Any, tokenizer: Any, final: Path, p: TrainParams, model_dir: str
) -> None:
    """The final model when the weights are split over the ranks (ZeRO-3, FSDP full_shard):
    every rank takes part in ``save_model`` (whole weights gathered to rank 0; the best
    evaluation's are in ``best/`` already), then rank 0 reloads them unsharded and saves
    them as :func:`save_final` does (merged, finite, tokenizer)."""
    import shutil

    staging = final.parent / ".staging-gathered"
    source = trainer.best_to_load
    if source is None:
        trainer.save_model(str(staging))  # a collective: every rank calls it
        source = staging
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        save_final(reload_saved(Path(source), model_dir, p), tokenizer, final, p)
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()


def reload_saved(folder: Path, model_dir: str, p: TrainParams) -> Any:
    """A model ``save_model`` wrote, loaded whole in one process (LoRA: on its base)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # Training is over: without this, from_pretrained would build the model under ZeRO-3's
    # partitioned init, a collective the other ranks (waiting at a barrier) never join.
    unset_hf_deepspeed_config()
    dtype = torch.bfloat16 if bf16_weights(p) else torch.float32
    if not p.apply_lora:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    return PeftModel.from_pretrained(base, folder)


class MetricsCallback(TrainerCallback):
    """Trainer callback: loss, eval_loss, perplexity, lr, tokens/s to MLflow; live progress."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._tick: tuple[float, float] = (time.time(), 0)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        logs = dict(logs or {})
        seen = logs.pop("num_input_tokens_seen", None)
        if seen is not None:
            now = time.time()
            dt = now - self._tick[0]
            if dt > 0 and seen > self._tick[1]:
                logs["tokens_per_second"] = (seen - self._tick[1]) / dt
            self._tick = (now, seen)
        if "eval_loss" in logs:
            logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50))
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
        self.hooks.metrics(metrics, state.global_step)
        shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        self.hooks.log.info("step %d/%d %s", state.global_step, state.max_steps, shown)
        self.hooks.progress(
            stage="finetune",
            step=state.global_step,
            total=state.max_steps,
            loss=metrics.get("loss"),
            eval_loss=metrics.get("eval_loss"),
        )
