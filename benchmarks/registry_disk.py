"""Claim: a registered version costs about nothing on disk beyond the job's own weights.

Ours: the job's final model (SmolLM2-135M-Instruct, ~270 MB bf16) goes through the real
`package` stage and `models register`; package folders and the version hard-link it.
Baseline: what chattune did before — a full copy for `pytorch_model_folder/final`, for the
MLflow model's artifact, and for the registered version. Bytes are counted per inode, once
(like `du`), over the whole workspace, in one run side by side.

    .venv/bin/python benchmarks/registry_disk.py [--model SmolLM2-135M-Instruct]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from chattune import Client
from chattune.catalog import assets
from chattune.train import package
from chattune.train.results import FineTuned, Hooks


def unique_bytes(root: Path) -> int:
    seen = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def finished_job(client: Client, model: str, final: Path, data: Path) -> None:
    """The job record a completed pipeline leaves (its final model written by `finetune`)."""
    store = client.models.store
    store.jobs.insert(
        "bench", "bench", {"model": model, "data": {"train": str(data)}}, ["validate", "package"]
    )
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    tuned = FineTuned(
        final_model=str(final),
        adapter_only=False,
        base_model_dir=str(final),
        checkpoints_dir=str(final.parent),
        best_checkpoint=None,
        global_step=1,
        train_loss=0.0,
        train_rows=1,
    )
    packaged = package.run(tuned, model, final.parents[1] / "package", Hooks())
    store.jobs.update_stage(
        "bench",
        "validate",
        status="completed",
        outputs={"model": model, "rows": {"train": 1}, "data_sha256": {"train": digest}},
    )
    store.jobs.update_stage("bench", "package", status="completed", outputs=packaged.model_dump())
    store.jobs.update("bench", status="completed")


def ours(root: Path, model: str, source: Path, data: Path) -> tuple[int, int, float]:
    client = Client(root)
    final = root / "jobs" / "bench" / "finetune" / "final"
    shutil.copytree(source, final)  # what `finetune` writes: the one copy
    job_only = unique_bytes(root)
    started = time.perf_counter()
    finished_job(client, model, final, data)
    client.models.register(job="bench", name="bench-model")
    return job_only, unique_bytes(root), time.perf_counter() - started


def baseline(root: Path, source: Path) -> tuple[int, int, float]:
    final = root / "jobs" / "bench" / "finetune" / "final"
    shutil.copytree(source, final)
    job_only = unique_bytes(root)
    started = time.perf_counter()
    pkg = root / "jobs" / "bench" / "package"
    shutil.copytree(final, pkg / "pytorch_model_folder" / "final")
    shutil.copytree(final, pkg / "mlflow_model_folder" / "artifacts" / "final")
    shutil.copytree(pkg / "mlflow_model_folder", root / "models" / "bench-model" / "1")
    return job_only, unique_bytes(root), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    args = parser.parse_args()
    source = assets.fetch([args.model])[args.model]
    weights = sum(f.stat().st_size for f in source.glob("*.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text(
            '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "yo"}]}\n'
        )
        rows = [
            ("ours (hard links)", *ours(Path(tmp) / "ours", args.model, source, data)),
            ("baseline (copies)", *baseline(Path(tmp) / "base", source)),
        ]
    print(f"model {args.model}, weights {weights / 1e6:.1f} MB")
    print(
        f"{'':20} {'job only MB':>12} {'+package+register MB':>22} "
        f"{'added / weights':>16} {'seconds':>8}"
    )
    for name, job_only, total, seconds in rows:
        added = total - job_only
        print(
            f"{name:20} {job_only / 1e6:12.1f} {added / 1e6:22.1f} "
            f"{added / weights:16.3f}x {seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
