"""The transformers Trainer with guarantees the stock one lacks, on its public seams only.

**How it hooks in.** Only what transformers documents for subclasses and callbacks:
overrides of ``compute_loss``, ``training_step``, ``evaluate``, ``save_model`` and ``train``,
and a :class:`TrainerCallback` (:class:`Guard`) on ``on_step_end``, ``on_log``,
``on_evaluate`` and ``on_save``. No ``_``-member of a transformers or PEFT class is
overridden, called or read (tests/unit/train/test_public_seams.py walks the source for it),
so a transformers upgrade cannot silently change checkpointing or resume. A loop of our own
on accelerate was the alternative; it would re-implement what the Trainer's DeepSpeed, FSDP,
gradient accumulation, resume and early stopping already do (and test), for a few hooks the
callbacks give.

- **Training watches itself**: the first non-finite training loss (``training_step``) or
  gradient norm (``on_log``; every save step is logged, so it is checked before any save)
  stops the run at that step with :class:`NonFiniteLoss`; the last good checkpoint stays,
  and no final model is written.
- **The best model is kept whenever evaluation runs**: each new best (``metric_for_best_model``,
  judged in ``on_evaluate`` as the Trainer judges it) is saved to ``best/`` (staging folder +
  rename) and loaded back at the end, whatever the checkpoint schedule.
- **A checkpoint is complete once marked**: the Trainer writes ``checkpoint-N`` in place; in
  ``on_save``, once every rank has written its part, the marker ``chattune_state.json`` (the
  training-loss sum so far, so a resumed run reports its loss over all its steps) is written
  atomically. Resume takes only marked checkpoints and removes unmarked ones
  (:mod:`chattune.train.checkpoints`); rotation (``save_total_limit``) runs after the marker,
  over marked checkpoints, so it never deletes the last complete one. A failed write (a full
  disk) is :class:`CheckpointWriteError`, in one line, and its folder is removed.
- **One definition of the eval metrics**: evaluation calls
  :func:`chattune.train.scoring.score` on the eval split's conversations (the stock loop
  averages per-batch mean losses over packed rows), so ``eval_loss`` during training and
  ``test_loss`` after it answer the same question the same way.
- **The training loss never holds the whole batch's logits**: it is computed in chunks
  through the output projection (:mod:`chattune.train.loss`), equal to the model's own
  loss, so peak memory grows linearly with the sequence length; models it cannot split
  (logit soft-capping, DeepSpeed) keep the model's own loss (:attr:`loss_note` says which).
- **bf16 LoRA on a CPU computes the adapters in bf16** (``adapter_autocast``): the frozen
  base holds bf16 weights and the adapters float32 master weights; PEFT would cast every
  adapted layer's input to float32, and each of those copies is kept for the backward pass
  (7 per decoder layer: 1.6 GB of a 2,048-token SmolLM2 step). Under CPU bf16 autocast
  with that cast off, the adapters multiply the bf16 activations the base already keeps,
  and their gradients still land in the float32 master weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from transformers import Trainer, TrainerCallback

from chattune.errors import ChattuneError
from chattune.train import faults
from chattune.train.checkpoints import (
    STAGING_PREFIX,
    mark_complete,
    newest_complete,
    rotate,
)
from chattune.train.loss import causal_lm_loss, unsupported
from chattune.train.scoring import score

BEST, BEST_INFO = "best", "best.json"


class NonFiniteLoss(ChattuneError):
    """Training produced a NaN or infinite loss or gradient norm; it stopped at that step."""


class CheckpointWriteError(ChattuneError):
    """A checkpoint could not be written (a full disk, a read-only folder); training stopped."""


class ChattuneTrainer(Trainer):
    """Trainer with a non-finite watchdog and atomic checkpoints (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        loss_sum_before: float = 0.0,
        chunked_loss: bool = True,
        adapter_autocast: bool = False,
        keep_checkpoints: int | None = None,
        sharded_weights: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sharded_weights = sharded_weights
        """The weights are split over the ranks (ZeRO-3, FSDP full_shard): :meth:`load_best`
        leaves the best weights in ``best/`` (:attr:`best_to_load`) for the final save."""
        self.best_to_load: Path | None = None
        self.loss_sum_before = loss_sum_before
        """Training-loss sum of the steps before this ``train()`` call (a resume)."""
        self.keep_checkpoints = keep_checkpoints
        """Complete checkpoints kept (None: all); ``args.save_total_limit`` must stay None,
        else the Trainer would rotate before the new checkpoint is marked complete."""
        self.logged_loss = 0.0
        """Training-loss sum over this call's logged steps (mean over ranks, as logged)."""
        self.pending_loss = torch.zeros(())
        """Training-loss sum over the steps since the last log (this rank's)."""
        self.saving: Path | None = None
        """The checkpoint folder being written, until it is marked complete."""
        self.add_callback(Guard(self))
        self.adapter_autocast = adapter_autocast
        """Training forward passes run under CPU bf16 autocast without PEFT's float32
        input cast (bf16 LoRA on a CPU; the module docstring says why)."""
        why_not = "turned off" if not chunked_loss else unsupported(self.model)
        if why_not is None and self.is_deepspeed_enabled:
            why_not = "DeepSpeed runs the forward pass (ZeRO-3 partitions the output projection)"
        if why_not is None and self.is_fsdp_enabled:
            why_not = "FSDP shards the output projection"
        self.chunked_loss = why_not is None
        self.loss_note = (
            "chunked cross-entropy over the output projection (no full-vocabulary logits)"
            if why_not is None
            else f"the model's own (full logits): {why_not}"
        )
        """Which training loss runs, and why (the finetune stage logs it)."""

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """The stock loss, computed in chunks when :attr:`chunked_loss` (same value, same
        normalisation by ``num_items_in_batch``, same scaling across processes)."""
        with self.adapters_in_bf16(model):
            return self._compute_loss(model, inputs, return_outputs, num_items_in_batch)

    @contextlib.contextmanager
    def adapters_in_bf16(self, model: Any) -> Iterator[None]:
        if not self.adapter_autocast:
            yield
            return
        from peft.helpers import disable_input_dtype_casting

        with torch.autocast("cpu", torch.bfloat16), disable_input_dtype_casting(model):
            yield

    def _compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool, num_items_in_batch: Any
    ) -> Any:
        stock = return_outputs or self.label_smoother is not None or self.compute_loss_func
        if not self.chunked_loss or stock or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        by_items = self.model_accepts_loss_kwargs and num_items_in_batch is not None
        loss = causal_lm_loss(model, inputs, num_items_in_batch if by_items else None)
        if self.args.average_tokens_across_devices and by_items:
            tp = self.accelerator.num_processes // self.get_tp_size()
            loss = loss * (tp if self.args.n_gpu <= 1 else self.args.n_gpu)
        return loss

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(torch.isfinite(loss)):
            raise self.diverged("the training loss", float(loss), self.state.global_step + 1)
        if self.pending_loss.device != loss.device:
            self.pending_loss = self.pending_loss.to(loss.device)
        self.pending_loss += loss  # what the Trainer adds to its running loss, in its order
        return loss

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """The stock ``train``; a checkpoint write that fails (a full disk) stops it with
        :class:`CheckpointWriteError`, its half-written folder removed."""
        self.logged_loss, self.pending_loss, self.saving = 0.0, torch.zeros(()), None
        try:
            return super().train(*args, **kwargs)
        except OSError as exc:
            folder = self.saving
            if folder is None:
                raise
            shutil.rmtree(folder, ignore_errors=True)
            raise self._unwritable(folder.parent, folder.name, exc) from exc

    @property
    def run_dir(self) -> Path:
        """The folder of this run's checkpoints (``TrainingArguments.output_dir``)."""
        return Path(cast(str, self.args.output_dir))

    def save_model(self, output_dir: str | None = None, *args: Any, **kwargs: Any) -> None:
        """The stock ``save_model``; notes when it starts a checkpoint (the Trainer's first
        write of one), so a failed write can name it and remove it."""
        folder = Path(output_dir) if output_dir else self.run_dir
        if folder.name == f"checkpoint-{self.state.global_step}":
            self.saving = folder
        super().save_model(output_dir, *args, **kwargs)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """``eval_loss``, ``eval_perplexity`` and ``eval_token_accuracy`` by :func:`score`."""
        rows = eval_dataset if eval_dataset is not None else self.eval_dataset
        examples = getattr(rows, "examples", None)  # PackedRows: the split, memory-mapped
        if examples is None:
            examples = [example for row in cast(Any, rows) for example in row]  # unpack rows
        model = cast(Any, self.model)
        was_training = model.training
        started = time.time()
        model.eval()
        try:
            scored = score(model, examples, self.args.per_device_eval_batch_size)
        finally:
            model.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scored.items() if k != "tokens"}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - started, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics

    def save_best(self, value: float) -> None:
        """The weights of the new best evaluation (``value``), atomically, in ``best/``."""
        run_dir = self.run_dir
        final, staging = run_dir / BEST, run_dir / f"{STAGING_PREFIX}{BEST}"
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)
        self.accelerator.wait_for_everyone()
        self.save_model(str(staging))
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            info = {"step": self.state.global_step, "metric": self.args.metric_for_best_model}
            (staging / BEST_INFO).write_text(json.dumps(info | {"value": value}))
            old = run_dir / f"{STAGING_PREFIX}old-{BEST}"
            if final.exists():
                os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def load_best(self) -> str | None:
        """After training: load the best evaluation's weights (when not the last step's);
        the folder that holds them, or None when no evaluation ran."""
        folder = self.run_dir / BEST
        try:
            info = json.loads((folder / BEST_INFO).read_text())
        except (OSError, ValueError):
            return None
        if info.get("step") != self.state.best_global_step:  # left by a run before a resume
            return None
        if info["step"] != self.state.global_step:
            self.state.best_model_checkpoint = str(folder)
            if self.sharded_weights:
                self.best_to_load = folder
            else:
                load_weights(self.model, folder)
        return str(folder)

    def diverged(self, what: str, value: float, step: int) -> NonFiniteLoss:
        cause = f"learning_rate {self.args.learning_rate:g} too high"
        if self.args.fp16:
            cause += ", or fp16 overflow (precision bf16 or 32 avoids it)"
        return NonFiniteLoss(
            f"step {step}: {what} is {value} (not finite); training stopped, the last good "
            f"checkpoint is kept and nothing is packaged. Likely cause: {cause}",
            "lower learning_rate (LoRA: 1e-4 to 1e-3; full: 1e-5), keep max_grad_norm > 0, "
            "and create the job again",
        )

    def loss_sum(self) -> float:
        """Training-loss sum over every step so far, this call's and those before a resume."""
        return self.loss_sum_before + self.logged_loss + float(self.pending_loss.item())

    def _unwritable(self, run_dir: Path, name: str, exc: OSError) -> CheckpointWriteError:
        kept = newest_complete(run_dir)
        last = f"the last good checkpoint, {kept.name}, is kept" if kept else "no checkpoint yet"
        return CheckpointWriteError(
            f"step {self.state.global_step}: {name} could not be written to {run_dir} "
            f"({exc.strerror or exc}); training stopped, {last}",
            "free space on that disk (or raise save_steps / lower save_total_limit), then "
            "`chattune jobs resume JOB` continues from the last good checkpoint",
        )

    def mark_checkpoint(self) -> None:
        """After the Trainer wrote checkpoint N on every rank: its marker, then rotation."""
        folder = self.run_dir / f"checkpoint-{self.state.global_step}"
        self.saving = folder
        faults.hit(f"checkpoint_save:{self.state.global_step}")  # written, not yet marked
        loss_sum = self.loss_sum()
        self.accelerator.wait_for_everyone()  # every rank has written its part
        if self.args.should_save:
            mark_complete(folder, loss_sum)
            rotate(folder.parent, self.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        self.saving = None


class Guard(TrainerCallback):
    """The hooks of :class:`ChattuneTrainer` (module docstring): fault points, the
    gradient-norm watchdog, the loss sum, the best model, the completeness marker."""

    def __init__(self, trainer: ChattuneTrainer) -> None:
        self.trainer = trainer
        self.logged_at = 0
        self.training = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.training, self.logged_at = True, state.global_step

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.training = False

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        faults.hit(f"step:{state.global_step}")  # the step is done, nothing logged or saved
        if control.should_save:  # log first: the watchdog sees the norm before any save
            control.should_log = True

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        logs = logs or {}
        # fp16's loss scaler expects an overflow now and then (it skips that step): not fatal.
        norm = logs.get("grad_norm")
        if norm is not None and not math.isfinite(norm) and not args.fp16:
            raise self.trainer.diverged("the gradient norm", norm, state.global_step)
        if "loss" in logs:  # the Trainer logs the mean over the steps since its last log
            self.trainer.logged_loss += logs["loss"] * (state.global_step - self.logged_at)
            self.trainer.pending_loss.zero_()
            self.logged_at = state.global_step

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **_: Any
    ) -> None:
        """A new best (judged as the Trainer judges it, just after this hook): keep it."""
        name = args.metric_for_best_model
        if not (self.training and name and metrics):
            return
        value = metrics[name if name.startswith("eval_") else f"eval_{name}"]
        best = state.best_metric
        if best is None or (value > best if args.greater_is_better else value < best):
            self.trainer.save_best(value)

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.trainer.mark_checkpoint()


def load_weights(model: Any, folder: Path) -> None:
    """Load saved weights (``save_model``'s folder) into ``model``: a PEFT model's adapter,
    or a full model's safetensors (sharded or not)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.load_adapter(str(folder), model.active_adapter)
        return
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    for name in files:  # one shard at a time: tied weights are saved once, hence not strict
        model.load_state_dict(load_file(folder / name), strict=False)
