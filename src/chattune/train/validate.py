"""Stage `validate`: the data, model and compute are usable before anything expensive runs."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from chattune.catalog import sources
from chattune.data.digest import check_data_path
from chattune.errors import ValidationError
from chattune.train.params import TrainParams
from chattune.train.results import Hooks, Validated

if TYPE_CHECKING:
    from chattune.compute.estimate import TrainingShape


def run(
    model: str, data: dict[str, str], params: TrainParams, hooks: Hooks, method: str = "sft"
) -> Validated:
    """Parse the model reference, read and check every data file and the compute settings."""
    ref = sources.parse(model)
    counts, hashes = {}, {}
    if method == "dpo":
        check_preference_job(params, data)
    for split, path in data.items():
        counts[split] = check_data(split, path, hooks, preference=method == "dpo")
        hashes[split] = file_digest(Path(path))
    check_compute(params)
    check_memory(model, params, hooks)
    hooks.log.info("model: %s", ref.display)
    return Validated(model=ref.display, rows=counts, data_sha256=hashes)


def check_data(split: str, path: str, hooks: Hooks, preference: bool = False) -> int:
    """Stream one data file through the validator: its row count; warnings go to the log,
    errors (each naming its line) raise once. A preference job's splits (``test_gen``
    aside) must hold preference rows."""
    from chattune.data.preference import PREFERENCE_FORMATS
    from chattune.data.report import validate_file
    from chattune.data.schema import DataValidationError

    report = validate_file(path)
    if preference and split != "test_gen" and report["format"] not in PREFERENCE_FORMATS:
        raise ValidationError(
            f"data.{split} {path}: {report['format']} rows; method dpo needs preference rows "
            "(prompt, chosen, rejected)",
            f"use one of the formats {', '.join(PREFERENCE_FORMATS)}, or method: sft",
        )
    errors = [p["text"] for p in report["problems"] if p["severity"] == "error"]
    if errors:
        raise DataValidationError([f"data.{split}: {e}" for e in errors])
    for p in report["problems"]:
        hooks.log.warning("data.%s: %s", split, p["text"])
    hooks.log.info(
        "data.%s: %d conversations, %s format (%s)", split, report["rows"], report["format"], path
    )
    return int(report["rows"])


def check_preference_job(p: TrainParams, data: dict[str, str]) -> None:
    """What ``method: dpo`` does not do (yet): several processes, packing of other pairs."""
    if p.world != (1, 1) or p.apply_deepspeed or p.fsdp:
        raise ValidationError(
            "method dpo trains in one process: processes, GPUs > 1, nodes, apply_deepspeed "
            "and fsdp are for method sft",
            "remove those parameters (one process, one device)",
        )


def file_digest(path: Path) -> str:
    """sha256 of a file (what ``sha256sum`` prints), or of a dataset folder's own files (its
    README and the data files of its splits) in path order: not of whatever else lies
    beneath (``data.train: /tmp`` used to hash every file there)."""
    check_data_path(path)
    h = hashlib.sha256()
    files = _dataset_files(path) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(functools.partial(fh.read, 1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _dataset_files(folder: Path) -> list[Path]:
    from chattune.data.hub_layout import split_files

    readme = folder / "README.md"
    files = {f for split in split_files(folder).values() for f in split}
    files |= {readme} if readme.is_file() else set()
    return sorted(f for f in files if f.is_file())


FSDP_ON_CPU = (
    "fsdp: accelerate shards with FSDP only on GPUs (on a CPU it would train as plain DDP); "
    "run it on a CUDA machine, or shard on CPU with apply_deepspeed: true, deepspeed_stage: 3"
)


def check_compute(p: TrainParams) -> None:
    """Settings this machine cannot honour fail here, in one line, not inside the trainer."""
    wants = []
    if p.apply_deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise ValidationError(
            "parameters.apply_deepspeed needs the deepspeed package, which is not installed",
            "pip install 'chattune[deepspeed]', or set apply_deepspeed: false",
        )
    if (p.number_of_gpu_to_use_finetuning or 0) > 1 and p.processes is None:
        wants.append("number_of_gpu_to_use_finetuning")
    if p.precision == "16":  # bf16 trains on CPU too; fp16 needs a GPU's loss scaler
        wants.append("precision 16")
    if p.fsdp:  # accelerate builds FSDP on GPUs only: on CPU it would train as plain DDP
        wants.append("fsdp")
    if p.num_nodes_finetune > 1 and not p.rendezvous_endpoint:
        raise ValidationError(
            f"parameters.num_nodes_finetune {p.num_nodes_finetune} needs rendezvous_endpoint",
            "set rendezvous_endpoint: HOST:PORT of node 0 (the same on every node)",
        )
    if wants:
        _need_cuda(p, wants)


def check_memory(model: str, p: TrainParams, hooks: Hooks) -> None:
    """Refuse a job whose memory estimate (the one ``compute check`` prints) exceeds this
    machine's, naming what would fit; skipped when the model's config is not here yet."""
    from chattune.compute.fit import require_fit
    from chattune.errors import NotFoundError

    shape = training_shape(p)
    try:
        fit = require_fit(model, shape)
    except NotFoundError as exc:  # a hub model before its download: model_import decides
        hooks.log.info("memory estimate skipped: %s", exc.message)
        return
    hooks.log.info("memory estimate: %s; %s GB here", fit.describe(), fit.room.gb)


def training_shape(p: TrainParams) -> TrainingShape:
    """The parameters the memory estimate reads (``compute check``'s shape)."""
    from chattune.compute.estimate import TrainingShape

    return TrainingShape(
        apply_lora=p.apply_lora,
        lora_r=p.lora_r,
        lora_target_modules=p.lora_target_modules,
        lora_dropout=p.lora_dropout,
        precision=p.precision,
        per_device_train_batch_size=p.per_device_train_batch_size,
        max_seq_length=p.max_seq_length,
        optim=p.optim,
        processes=p.world[0],
        deepspeed_stage=p.deepspeed_stage if p.apply_deepspeed else None,
    )


def _need_cuda(p: TrainParams, wants: list[str]) -> None:
    import torch

    if not torch.cuda.is_available():
        hints = []
        if p.number_of_gpu_to_use_finetuning and p.number_of_gpu_to_use_finetuning > 1:
            hints.append(
                f"to run the same on CPU set processes: {p.number_of_gpu_to_use_finetuning} "
                "(gloo; apply_deepspeed runs there too)"
            )
        if p.fsdp:
            hints.append(FSDP_ON_CPU)
        if p.precision == "16":
            hints.append("set precision: bf16 (trains on CPU) or 32")
        raise ValidationError(
            f"parameters {', '.join(wants)} need a CUDA GPU, and this machine has none",
            "; ".join(hints),
        )
    gpus = torch.cuda.device_count()
    if (p.number_of_gpu_to_use_finetuning or 0) > gpus:
        raise ValidationError(
            f"parameters.number_of_gpu_to_use_finetuning {p.number_of_gpu_to_use_finetuning}: "
            f"this node has {gpus} GPUs",
            f"ask for at most {gpus}",
        )
