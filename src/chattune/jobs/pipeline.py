"""The pipeline, as one table: each stage's function, the stages it needs, its typed result,
what goes into its cache key, and whether other jobs may reuse it.

validate → model_import → preprocess → finetune → evaluate → package. A stage's cache key
hashes its own inputs, the keys of the stages it needs and the code version, so a stage is
reused exactly when nothing that can change its result has changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

from chattune.jobs.spec import JobSpec
from chattune.train.params import TrainParams
from chattune.train.results import (
    Evaluation,
    FineTuned,
    Hooks,
    ImportedModel,
    Packaged,
    Preprocessed,
    Result,
    Validated,
)
from chattune.train.tokens import FORMAT as TOKENS_FORMAT

R = TypeVar("R", bound=Result)


@dataclass
class Inputs:
    """What one run of the pipeline knows: the spec, effective parameters, data digests."""

    spec: JobSpec
    params: TrainParams
    job_dir: Path
    hooks: Hooks = field(default_factory=Hooks)
    resuming: bool = False
    data_sha256: dict[str, str] = field(default_factory=dict)
    results: dict[type[Result], Result] = field(default_factory=dict)
    peak_rss_gb: dict[str, float] = field(default_factory=dict)
    """The job process's peak resident memory at the end of each stage (GiB, so far)."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU seconds the job process had used at the end of each stage (running total)."""

    @property
    def data(self) -> dict[str, str]:
        """The spec's data files by split (``train``, ``test``, ``validation``)."""
        return {k: v for k, v in self.spec.data.model_dump().items() if v is not None}

    def get(self, kind: type[R]) -> R:
        """The result of an earlier stage, by its type."""
        return cast(R, self.results[kind])  # the table holds each kind's own type

    def dir(self, stage: str) -> Path:
        return self.job_dir / stage


@dataclass(frozen=True)
class Stage:
    """One row of the pipeline table."""

    name: str
    run: Callable[[Inputs], Result]
    result: type[Result]
    needs: tuple[str, ...]
    key_inputs: Callable[[Inputs], dict[str, Any]]
    """Everything besides needed stages and code that can change the result."""
    shared: bool = False
    """Reusable by other jobs (deterministic, cheap to keep); else only by the same job."""


def _validate(i: Inputs) -> Validated:
    from chattune.train import validate

    return validate.run(i.spec.model, i.data, i.params, i.hooks, method=i.spec.method)


def _model_import(i: Inputs) -> ImportedModel:
    from chattune.train import model_import

    return model_import.run(i.spec.model, i.hooks)


def _preprocess(i: Inputs) -> Preprocessed:
    from chattune.train import preprocess

    model = i.get(ImportedModel)
    splits = {k: v for k, v in i.data.items() if k != "test_gen"}  # prompts, not trained on
    if i.spec.method == "dpo":
        from chattune.train import preference

        p = i.params
        return preference.run(
            model, splits, p.max_seq_length, p.max_prompt_length, i.dir("preprocess"), i.hooks,
            precompute_reference=p.precompute_reference and not p.apply_lora,
        )  # fmt: skip
    return preprocess.run(model, splits, i.params.max_seq_length, i.dir("preprocess"), i.hooks)


def _finetune(i: Inputs) -> FineTuned:
    prep, model = i.get(Preprocessed), i.get(ImportedModel)
    if i.spec.method == "dpo":  # one process (validate refuses the others)
        from chattune.train import dpo_stage

        return dpo_stage.finetune(model, prep, i.params, i.dir("finetune"), i.hooks, i.resuming)
    nproc, nnodes = i.params.world
    if nproc * nnodes > 1 or i.params.apply_deepspeed or i.params.fsdp:  # a process group
        from chattune.train import distributed

        launch = distributed.Launch(nproc, nnodes, i.params.rendezvous_endpoint)
        return distributed.run(
            launch, model, prep, i.params, i.dir("finetune"), i.hooks, i.resuming
        )
    from chattune.train import finetune

    return finetune.run(model, prep, i.params, i.dir("finetune"), i.hooks, i.resuming)


def _evaluate(i: Inputs) -> Evaluation:
    from chattune.train import evaluate

    gen_data = i.data.get("test_gen") or i.data.get("test")
    prep, tuned = i.get(Preprocessed), i.get(FineTuned)
    if i.spec.method == "dpo":
        from chattune.train import dpo_stage

        return dpo_stage.evaluate(prep, tuned, i.params, i.hooks, i.dir("evaluate"))
    return evaluate.run(prep, tuned, i.params, i.hooks, gen_data, i.dir("evaluate"))


def _package(i: Inputs) -> Packaged:
    from chattune.train import package

    return package.run(i.get(FineTuned), i.spec.model, i.dir("package"), i.hooks)


def _training(i: Inputs) -> dict[str, Any]:
    params = i.params.model_dump(mode="json", exclude={"per_device_eval_batch_size"})
    return params if i.spec.method == "sft" else {**params, "method": i.spec.method}


def _preprocessing(i: Inputs) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "data": i.data_sha256,
        "max_seq_length": i.params.max_seq_length,
        "format": TOKENS_FORMAT,  # a cache in another layout (JSON lines) is never reused
    }
    if i.spec.method == "dpo":  # keys of SFT jobs stay as they were
        p = i.params
        reference = p.precompute_reference and not p.apply_lora
        inputs |= {"method": "dpo", "max_prompt_length": p.max_prompt_length}
        inputs |= {"precompute_reference": p.precision} if reference else {}
    return inputs


PIPELINE: tuple[Stage, ...] = (
    Stage(
        "validate",
        _validate,
        Validated,
        needs=(),
        # Every parameter: validate checks compute settings (GPUs, DeepSpeed, precision).
        key_inputs=lambda i: {
            "model": i.spec.model,
            "data": i.data_sha256,
            "params": i.params.model_dump(mode="json"),
        },
        shared=True,
    ),
    Stage(
        "model_import",
        _model_import,
        ImportedModel,
        needs=(),
        key_inputs=lambda i: {"model": i.spec.model, "folder": folder_fingerprint(i.spec.model)},
        shared=True,
    ),
    Stage(
        "preprocess",
        _preprocess,
        Preprocessed,
        needs=("model_import",),
        key_inputs=_preprocessing,
        shared=True,
    ),
    Stage("finetune", _finetune, FineTuned, ("model_import", "preprocess"), _training),
    Stage(
        "evaluate",
        _evaluate,
        Evaluation,
        needs=("preprocess", "finetune"),
        key_inputs=lambda i: {
            **({"method": "dpo", "beta": i.params.beta} if i.spec.method == "dpo" else {}),
            "per_device_eval_batch_size": i.params.per_device_eval_batch_size,
            "precision": i.params.precision,
            "generation": [i.params.generation_eval_rows, i.params.generation_max_new_tokens],
            "gen_data": i.data_sha256.get("test_gen") or i.data_sha256.get("test"),
        },
    ),
    Stage(
        "package",
        _package,
        Packaged,
        needs=("finetune",),
        key_inputs=lambda i: {"model": i.spec.model},
    ),
)
STAGE_NAMES = tuple(s.name for s in PIPELINE)


def cache_keys(inputs: Inputs) -> dict[str, str]:
    """Every stage's cache key, in table order (a stage's key covers those it needs)."""
    keys: dict[str, str] = {}
    for stage in PIPELINE:
        blob = {
            "stage": stage.name,
            "code": code_version(),
            "inputs": stage.key_inputs(inputs),
            "needs": {n: keys[n] for n in stage.needs},
        }
        text = json.dumps(blob, sort_keys=True, default=str)
        keys[stage.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return keys


@lru_cache(maxsize=1)
def code_version() -> str:
    """The chattune version plus a digest of the code that computes stage results."""
    import chattune

    root = Path(chattune.__file__).parent
    h = hashlib.sha256(chattune.__version__.encode())
    for package in ("train", "data", "catalog"):
        for path in sorted((root / package).glob("*.py")):
            h.update(path.name.encode() + path.read_bytes())
    return f"{chattune.__version__}+{h.hexdigest()[:12]}"


def folder_fingerprint(ref: str) -> list[tuple[str, int, int]] | None:
    """Names, sizes and mtimes of a local model folder's files (None for other references)."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
