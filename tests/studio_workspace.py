"""A workspace with real rows for the studio's tests and benchmark: finished jobs (stages,
parameters, validate outputs), registered versions (hard-linked model folders), an endpoint
with keys. No training: the list and detail views read these rows like any others."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from chattune.client import Client
from chattune.jobs.pipeline import STAGE_NAMES
from chattune.serving import keys as keyfile
from chattune.store import workspace_store
from chattune.store.models import RegisteredModel

CONVERSATIONS = [
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"What is {i} + {i}?"},
        {"role": "assistant", "content": f"{i} + {i} is {2 * i}."},
    ]
    for i in range(12)
]


def write_data(folder: Path) -> Path:
    """``folder/data/train.jsonl``: a small valid chat file; ``bad.jsonl`` one with errors."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = data / "train.jsonl"
    train.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CONVERSATIONS))
    bad = [{"messages": CONVERSATIONS[0]}, {"messages": [{"role": "user", "content": "hi"}]}]
    (data / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad) + "{oops\n")
    return train


def add_job(client: Client, name: str, train: str, status: str = "completed") -> None:
    store = workspace_store(client.workspace).jobs
    spec = {"name": name, "model": "tiny-random-phi3", "data": {"train": train}}
    params = {"learning_rate": {"value": 2e-5, "source": "default"}}
    store.insert(name, "exp", spec, STAGE_NAMES, params)
    now = time.time()
    store.update(name, status=status, started_at=now - 30, finished_at=now)
    for stage in STAGE_NAMES:
        outputs = {"model": "tiny-random-phi3", "data_sha256": {"train": "ab" * 32}}
        store.update_stage(
            name,
            stage,
            status="completed",
            started_at=now - 5,
            finished_at=now,
            outputs=outputs if stage == "validate" else {},
        )


def add_version(client: Client, name: str, version: str, job: str, model_dir: Path) -> None:
    """A registered version whose folder hard-links ``model_dir`` (no copy of weights)."""
    folder = client.workspace.model_dir(name, version)
    for src in model_dir.rglob("*"):
        if src.is_file():
            dest = folder / src.relative_to(model_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dest)
    lineage = {
        "job": job,
        "base_model": "tiny-random-phi3",
        "data": [{"split": "train", "path": "data/train.jsonl", "sha256": "ab" * 32, "rows": 12}],
        "parameters": {"learning_rate": 2e-5},
        "metrics": {"test_loss": 1.5},
    }
    workspace_store(client.workspace).models.insert(
        RegisteredModel(
            name=name,
            version=version,
            path=str(folder),
            job=job,
            base_model="tiny-random-phi3",
            description="",
            tags={},
            labels=["latest"],
            lineage=lineage,
            created_at=time.time(),
        )
    )


def add_endpoint(client: Client, name: str) -> None:
    """An endpoint record with keys (its gateway not started: shown as it is)."""
    workspace_store(client.workspace).endpoints.insert(name, "127.0.0.1", "key")
    folder = client.workspace.endpoint_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    keyfile.write_keys(folder / "keys.json", {k: keyfile.new_key() for k in keyfile.KEY_TYPES})


def populate(client: Client, root: Path, model_dir: Path, jobs: int = 3, versions: int = 2) -> None:
    """``jobs`` completed jobs, ``versions`` versions of model ``tiny-chat``, endpoint ``ep``."""
    train = write_data(root)
    for i in range(jobs):
        add_job(client, f"job-{i:03d}", str(train.relative_to(root)))
    for v in range(1, versions + 1):
        add_version(client, "tiny-chat", str(v), "job-000", model_dir)
    add_endpoint(client, "ep")
