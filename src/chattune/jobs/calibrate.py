"""The pre-flight calibration process: the real stages on a slice of the job's data.

``python -m chattune.jobs.calibrate REQUEST.json`` (started by :mod:`chattune.jobs.preflight`
in a temporary folder, so its peak RSS is measured alone). It runs, in the job process's
order, validate → model_import → preprocess → a few optimizer steps of the actual model,
data, batch and precision → scoring and generation → package, and writes what it measured
(``result.json``): seconds per stage, per token and per row, and the process's peak RSS.
Nothing is written outside the temporary folder.
"""

from __future__ import annotations

import gc
import json
import logging
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chattune.jobs.spec import JobSpec, resolve_parameters
from chattune.train.params import TrainParams
from chattune.train.results import Hooks, ImportedModel, Preprocessed
from chattune.workspace import write_atomic

STEPS = 2
"""Optimizer steps timed (after one warm-up step)."""
SLICE_ROWS = {"train": 48, "validation": 4, "test": 4, "test_gen": 2}
GEN_TOKENS = 8
"""New tokens generated to time generation."""


class Clock:
    """Wall and CPU seconds (this process, all its threads) per named part, in order. CPU
    time does not grow when other work shares the cores; wall time does."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    request_path = Path((argv or sys.argv[1:])[0])
    request = json.loads(request_path.read_text())
    spec = JobSpec.model_validate(request["spec"])
    out = request_path.parent
    result = calibrate(spec, out, request.get("steps", STEPS), request.get("mlflow_uri"))
    write_atomic(out / "result.json", json.dumps(result))
    return 0


def calibrate(
    spec: JobSpec, work: Path, steps: int = STEPS, mlflow_uri: str | None = None
) -> dict[str, Any]:
    """Measure each stage on a slice; what :func:`chattune.jobs.preflight.predict` scales.

    ``mlflow_uri``: the workspace's tracking store, opened read-only as the job's tracker
    opens it (its code and connection are part of the job's memory); nothing is written."""
    clock = Clock()
    with clock.part("start"):  # what the job process imports before its first stage
        import mlflow

        import chattune.jobs.tracking  # noqa: F401

        if mlflow_uri:
            mlflow.MlflowClient(tracking_uri=mlflow_uri).search_experiments(max_results=1)
    hooks = Hooks(log=_logger(work / "calibrate.log"))
    params = resolve_parameters(spec).params
    data = {k: v for k, v in spec.data.model_dump().items() if v is not None}
    rows = {split: count_rows(path) for split, path in data.items()}
    sliced = {
        s: slice_file(p, SLICE_ROWS[s], work / "data" / f"{s}.jsonl") for s, p in data.items()
    }
    from chattune.train import model_import, validate

    with clock.part("validate"):
        validate.run(spec.model, sliced, params, hooks)
    with clock.part("validate_data"):
        for split, path in sliced.items():
            validate.check_data(split, path, hooks)
    with clock.part("model_import"):
        imported = model_import.run(spec.model, hooks)
    prep = _preprocess(imported, sliced, params, work, clock, hooks)
    found: dict[str, Any] = {
        "rows": rows,
        "slice_rows": {s: count_rows(p) for s, p in sliced.items()},
    }
    found |= _train_shape(prep, params)
    found |= _finetune(imported, prep, params, work, clock, hooks, steps)
    found |= _evaluate(imported, prep, params, sliced, work, clock)
    found["peak_rss_gb"] = peak_rss_gb()
    found["seconds"] = clock.seconds
    found["cpu_seconds"] = clock.cpu_seconds
    return found


def _preprocess(
    imported: ImportedModel,
    sliced: dict[str, str],
    params: TrainParams,
    work: Path,
    clock: Clock,
    hooks: Hooks,
) -> Preprocessed:
    from transformers import AutoTokenizer

    from chattune.train import preprocess

    with clock.part("preprocess_fixed"):
        AutoTokenizer.from_pretrained(imported.model_dir)
    splits = {k: v for k, v in sliced.items() if k != "test_gen"}
    with clock.part("preprocess"):
        return preprocess.run(imported, splits, params.max_seq_length, work / "preprocess", hooks)


def _train_shape(prep: Preprocessed, p: TrainParams) -> dict[str, Any]:
    """Rows after packing and tokens per row, in the slice."""
    from chattune.train.finetune import rows
    from chattune.train.preprocess import read_examples

    train = rows(read_examples(prep.splits["train"].file), prep.max_seq_length, p.packing)
    tokens = [sum(len(e.input_ids) for e in row) for row in train]
    return {
        "max_seq_length": prep.max_seq_length,
        "slice_train_rows": len(train),
        "slice_train_tokens": sum(tokens),
        "slice_examples": {s: st.examples for s, st in prep.splits.items()},
    }


def _finetune(
    imported: ImportedModel,
    prep: Preprocessed,
    p: TrainParams,
    work: Path,
    clock: Clock,
    hooks: Hooks,
    steps: int,
) -> dict[str, Any]:
    """A few steps on the slice's longest rows (the peak memory), timed per token."""
    from transformers import AutoTokenizer

    from chattune.train.finetune import build_trainer, load_trainable, save_final

    calib = _calibration_params(p, steps + 1)
    longest = _longest_split(
        prep, p, (steps + 1) * p.per_device_train_batch_size * p.gradient_accumulation_steps, work
    )
    timer = StepTimer()
    with clock.part("finetune_load"):
        tokenizer = AutoTokenizer.from_pretrained(imported.model_dir)
        model = load_trainable(imported.model_dir, calib, hooks)
        trainer = build_trainer(model, tokenizer, longest, calib, work / "finetune", hooks)
        trainer.add_callback(timer)
    with clock.part("finetune_steps"):
        trainer.train()
    with clock.part("finetune_save"):
        save_final(trainer.model, tokenizer, work / "finetune" / "final", calib)
    found: dict[str, Any] = {
        "seconds_per_token": timer.seconds_per_token(),
        "cpu_seconds_per_token": timer.seconds_per_token(cpu=True),
        "steps_timed": timer.steps,
    }
    found["train_peak_rss_gb"] = peak_rss_gb()
    found["gpu_peak_gb"] = _gpu_peak_gb()
    del trainer, model
    gc.collect()
    return found


def _evaluate(
    imported: ImportedModel,
    prep: Preprocessed,
    p: TrainParams,
    sliced: dict[str, str],
    work: Path,
    clock: Clock,
) -> dict[str, Any]:
    """Model load, scoring per test example and generation per new token; then package."""
    from transformers import AutoTokenizer

    from chattune.train import generation, package
    from chattune.train.preprocess import read_examples
    from chattune.train.results import FineTuned
    from chattune.train.scoring import load_model, score

    found: dict[str, Any] = {}
    dtype = "bfloat16" if p.precision == "bf16" else "float32"
    if "test" in prep.splits:
        with clock.part("eval_load"):
            tokenizer = AutoTokenizer.from_pretrained(imported.model_dir)
            model = load_model(imported.model_dir, dtype=dtype)
        examples = read_examples(prep.splits["test"].file)
        with clock.part("eval_score"):
            score(model, examples, p.per_device_eval_batch_size)
        found["eval_examples"] = len(examples)
        gen_rows = min(p.generation_eval_rows, SLICE_ROWS["test_gen"])
        prompts = generation.sample(sliced.get("test_gen") or sliced["test"], gen_rows)
        if prompts:
            with clock.part("eval_generate"):
                generation.generate(model, tokenizer, prompts, GEN_TOKENS)
            found["generated_tokens"] = GEN_TOKENS * len(prompts)  # token-rows
        del model
        gc.collect()
        with clock.part("eval_reload"):  # the stage loads a second model (the fine-tuned):
            model = load_model(imported.model_dir, dtype=dtype)  # its memory after the first
            score(model, examples[:1], p.per_device_eval_batch_size)
        del model
        gc.collect()
    tuned = FineTuned(
        final_model=str(work / "finetune" / "final"),
        adapter_only=p.apply_lora and not p.merge_lora_weights,
        base_model_dir=imported.model_dir,
        checkpoints_dir=str(work / "finetune" / "checkpoints"),
        best_checkpoint=None,
        global_step=0,
        train_loss=0.0,
        train_rows=0,
    )
    with clock.part("package"):
        package.run(tuned, imported.model, work / "package", Hooks(log=_logger(work / "p.log")))
    return found


def _calibration_params(p: TrainParams, steps: int) -> TrainParams:
    """The job's parameters for ``steps`` steps: no evaluation, no checkpoint."""
    return p.model_copy(
        update={
            "max_steps": steps,
            "evaluation_strategy": "no",
            "save_steps": 10**6,
            "apply_early_stopping": False,
            "resume_from_checkpoint": False,
        }
    )


def _longest_split(prep: Preprocessed, p: TrainParams, n: int, work: Path) -> Preprocessed:
    """The preprocessed train split cut to the ``n`` longest training rows' examples."""
    from chattune.train.finetune import rows
    from chattune.train.preprocess import read_examples
    from chattune.train.tokens import SplitWriter

    train = rows(read_examples(prep.splits["train"].file), prep.max_seq_length, p.packing)
    longest = sorted(range(len(train)), key=lambda r: -sum(len(e.input_ids) for e in train[r]))
    keep = [e for r in longest[: max(n, 1)] for e in train[r]]
    with SplitWriter(work / "preprocess" / "train-longest.tokens") as out:
        for e in keep:
            out.add(e.input_ids, e.labels)
        path = out.commit()
    split = prep.splits["train"].model_copy(update={"file": str(path), "examples": len(keep)})
    return Preprocessed(max_seq_length=prep.max_seq_length, splits={"train": split})


class StepTimer:
    """A Trainer callback: wall time and input tokens of each step after the first."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int, float]] = []
        self.steps = 0

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("on_"):  # every other Trainer event: nothing to do
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        tokens = int(state.num_input_tokens_seen or 0)
        self.marks.append((time.perf_counter(), tokens, time.process_time()))

    def seconds_per_token(self, cpu: bool = False) -> float:
        """Wall (or CPU) seconds over the steps after the first (which pays for warm-up)."""
        (t0, n0, c0), (t1, n1, c1) = self.marks[0], self.marks[-1]
        self.steps = len(self.marks) - 1
        if len(self.marks) < 2 or n1 <= n0:
            raise RuntimeError("calibration: fewer than two timed training steps")
        return ((c1 - c0) if cpu else (t1 - t0)) / (n1 - n0)


def count_rows(path: str) -> int:
    """Conversations in a data file (a JSON Lines file's non-empty lines; else read)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl":
        with open(p, "rb") as f:
            return sum(1 for line in f if line.strip())
    from chattune.data.readers import iter_conversations

    return sum(1 for _ in iter_conversations(path))


def slice_file(path: str, rows: int, dest: Path) -> str:
    """The first ``rows`` conversations of ``path`` as a chattune JSON Lines file."""
    from chattune.data.readers import iter_conversations

    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w") as f:
        for i, conv in enumerate(iter_conversations(path)):
            if i >= rows:
                break
            f.write(json.dumps({"messages": [dict(m) for m in conv.messages]}) + "\n")
    return str(dest)


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _gpu_peak_gb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return float(torch.cuda.max_memory_allocated()) / 2**30


def _logger(path: Path) -> logging.Logger:
    log = logging.getLogger(f"chattune.calibrate.{path.stem}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        path.parent.mkdir(parents=True, exist_ok=True)
        log.addHandler(logging.FileHandler(path))
    return log


if __name__ == "__main__":
    sys.exit(main())
