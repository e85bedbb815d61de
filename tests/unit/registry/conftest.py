"""A workspace holding one completed job whose package stage made a real MLflow model of
tiny-random-phi3 (the registry's input); the job record is written through the store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from chattune.train.package import save_mlflow_model


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A job-like folder: ``final`` (the model) and ``mlflow_model_folder`` linking it."""
    from chattune.train.package import link_tree

    root = tmp_path_factory.mktemp("job")
    link_tree(tiny_model_dir, root / "final")  # the job's own files (inode of the weights)
    save_mlflow_model(root / "final", root / "mlflow_model_folder", "tiny-random-phi3")
    return root


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    path.write_text(json.dumps(row) + "\n")
    return path


@pytest.fixture
def completed_job(workspace: Path, packaged: Path, data_file: Path) -> str:
    """Job ``j`` completed, its stages' outputs as the pipeline writes them."""
    from chattune.store import workspace_store
    from chattune.workspace import Workspace

    store = workspace_store(Workspace.find(workspace))
    spec = {"model": "tiny-random-phi3", "data": {"train": str(data_file)}}
    stages = ["validate", "evaluate", "package"]
    store.jobs.insert("j", "exp", spec, stages, {"learning_rate": {"value": 1e-3, "source": "s"}})
    digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
    outputs = {
        "validate": {
            "model": "tiny-random-phi3:1",
            "rows": {"train": 1},
            "data_sha256": {"train": digest},
        },
        "evaluate": {"metrics": {"test_loss": 1.5}},
        "package": {
            "pytorch_model_folder": str(packaged),
            "mlflow_model_folder": str(packaged / "mlflow_model_folder"),
        },
    }
    for stage, out in outputs.items():
        store.jobs.update_stage("j", stage, status="completed", outputs=out)
    store.jobs.update("j", status="completed")
    return "j"
