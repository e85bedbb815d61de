"""The transformers Trainer with two guarantees the stock one lacks.

- **Training watches itself**: the first non-finite training loss (or gradient norm) stops
  the run at that step with :class:`NonFiniteLoss`, before anything is saved; the last good
  checkpoint stays, and no final model is written.
- **The best model is kept whenever evaluation runs**: each new best (``metric_for_best_model``)
  is saved to ``best/`` and loaded back at the end, whatever the checkpoint schedule.
- **Checkpoints are atomic**: each is written to a staging folder and renamed to
  ``checkpoint-N`` when complete, so a kill during a save never leaves a checkpoint that a
  resume would trip over. Each also records the training-loss sum so far, so a resumed run
  reports its loss over all its steps.
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
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from chattune.errors import ChattuneError
from chattune.train import faults
from chattune.train.checkpoints import (
    STAGING_PREFIX,
    TRAINER_STATE,
    newest_complete,
    write_run_state,
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
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.loss_sum_before = loss_sum_before
        """Training-loss sum of the steps before this ``train()`` call (a resume)."""
        self.adapter_autocast = adapter_autocast
        """Training forward passes run under CPU bf16 autocast without PEFT's float32
        input cast (bf16 LoRA on a CPU; the module docstring says why)."""
        why_not = "turned off" if not chunked_loss else unsupported(self.model)
        if why_not is None and self.is_deepspeed_enabled:
            why_not = "DeepSpeed partitions the output projection"
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
        with self._adapters_in_bf16(model):
            return self._compute_loss(model, inputs, return_outputs, num_items_in_batch)

    @contextlib.contextmanager
    def _adapters_in_bf16(self, model: Any) -> Iterator[None]:
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
            raise self._diverged("the training loss", float(loss), self.state.global_step + 1)
        return loss

    def _maybe_log_save_evaluate(self, tr_loss: Any, grad_norm: Any, *args: Any, **kw: Any) -> None:
        # Checked before logging and saving, so no checkpoint holds the weights it produced.
        # fp16's loss scaler expects an overflow now and then (it skips that step): not fatal.
        faults.hit(f"step:{self.state.global_step}")
        norm = float(grad_norm) if grad_norm is not None else 0.0
        if not math.isfinite(norm) and not self.args.fp16:
            raise self._diverged("the gradient norm", norm, self.state.global_step)
        super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kw)
        step = self.state.global_step
        if self.args.metric_for_best_model and self.state.best_global_step == step:
            self._save_best()

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
            examples = [example for row in rows for example in row]  # unpack packed rows
        model = self.model
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

    def _save_best(self) -> None:
        """The weights of the new best evaluation, atomically, in ``best/``."""
        run_dir = Path(self.args.output_dir)
        final, staging = run_dir / BEST, run_dir / f"{STAGING_PREFIX}{BEST}"
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)
        self.accelerator.wait_for_everyone()
        self.save_model(str(staging), _internal_call=True)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            info = {"step": self.state.global_step, "metric": self.args.metric_for_best_model}
            (staging / BEST_INFO).write_text(json.dumps(info | {"value": self.state.best_metric}))
            old = run_dir / f"{STAGING_PREFIX}old-{BEST}"
            if final.exists():
                os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def load_best(self) -> str | None:
        """After training: load the best evaluation's weights (when not the last step's);
        the folder that holds them, or None when no evaluation ran."""
        folder = Path(self.args.output_dir) / BEST
        try:
            info = json.loads((folder / BEST_INFO).read_text())
        except (OSError, ValueError):
            return None
        if info.get("step") != self.state.best_global_step:  # left by a run before a resume
            return None
        if info["step"] != self.state.global_step:
            self.state.best_model_checkpoint = str(folder)
            self._load_best_model()
        return str(folder)

    def _diverged(self, what: str, value: float, step: int) -> NonFiniteLoss:
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
        pending = float(self._tr_loss.item()) if hasattr(self, "_tr_loss") else 0.0
        return self.loss_sum_before + getattr(self, "_total_loss_scalar", 0.0) + pending

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """transformers' ``_save_checkpoint``, written to a staging folder, renamed at the end.

        A write that fails (a full disk) stops training with one line naming the checkpoint
        and the last good one, which stays usable for ``jobs resume``.
        """
        run_dir = Path(self._get_output_dir(trial=trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        final, staging = run_dir / name, run_dir / f"{STAGING_PREFIX}{name}"
        try:
            self._write_checkpoint(run_dir, staging, final)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise self._unwritable(run_dir, name, exc) from exc

    def _unwritable(self, run_dir: Path, name: str, exc: OSError) -> CheckpointWriteError:
        kept = newest_complete(run_dir)
        last = f"the last good checkpoint, {kept.name}, is kept" if kept else "no checkpoint yet"
        return CheckpointWriteError(
            f"step {self.state.global_step}: {name} could not be written to {run_dir} "
            f"({exc.strerror or exc}); training stopped, {last}",
            "free space on that disk (or raise save_steps / lower save_total_limit), then "
            "`chattune jobs resume JOB` continues from the last good checkpoint",
        )

    def _write_checkpoint(self, run_dir: Path, staging: Path, final: Path) -> None:
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)
        self.accelerator.wait_for_everyone()
        self.store_flos()
        self.save_model(str(staging), _internal_call=True)
        if not self.args.save_only_model:
            self._save_optimizer_and_scheduler(str(staging))
            self._save_scaler(str(staging))
            self._save_rng_state(str(staging))
        faults.hit(f"checkpoint_save:{self.state.global_step}")  # all but the trainer state
        loss_sum = self.loss_sum()
        self.accelerator.wait_for_everyone()  # every rank has written its part
        best = self.state.best_global_step
        if best and (best == self.state.global_step or (run_dir / f"checkpoint-{best}").exists()):
            self.state.best_model_checkpoint = str(run_dir / f"checkpoint-{best}")
        if self.args.should_save:
            self._export_callback_states()
            write_run_state(staging, loss_sum)
            self.state.save_to_json(str(staging / TRAINER_STATE))
            if final.exists():  # the same step saved again after a resume: replace it
                shutil.rmtree(final)
            os.replace(staging, final)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        self.accelerator.wait_for_everyone()

    def _export_callback_states(self) -> None:
        """What transformers stores for stateful callbacks (early stopping's patience)."""
        for cb in [*self.callback_handler.callbacks, self.control]:
            if isinstance(cb, ExportableState):
                key = cb.__class__.__name__
                if isinstance(self.state.stateful_callbacks.get(key), list):
                    self.state.stateful_callbacks[key].append(cb.state())
                else:
                    self.state.stateful_callbacks[key] = cb.state()
