"""Stage `package`: a PyTorch model folder and an MLflow model that ``mlflow.pyfunc`` loads."""

from __future__ import annotations

import shutil
from pathlib import Path

from chattune.train.results import FineTuned, Hooks, Packaged

CHAT_MODEL_CODE = Path(__file__).with_name("mlflow_chat_model.py")


def run(tuned: FineTuned, base_model: str, out: Path, hooks: Hooks) -> Packaged:
    """Write ``pytorch_model_folder`` (final + best checkpoint) and ``mlflow_model_folder``."""
    torch_folder = out / "pytorch_model_folder"
    mlflow_folder = out / "mlflow_model_folder"
    for folder in (torch_folder, mlflow_folder):
        if folder.exists():
            shutil.rmtree(folder)
    shutil.copytree(tuned.final_model, torch_folder / "final")
    if tuned.best_checkpoint:
        shutil.copytree(tuned.best_checkpoint, torch_folder / "best")
    serve_dir = Path(tuned.final_model)
    if tuned.adapter_only:
        serve_dir = merged_copy(tuned, out / "merged")
    save_mlflow_model(serve_dir, mlflow_folder, base_model)
    hooks.log.info("packaged %s and %s", torch_folder, mlflow_folder)
    return Packaged(pytorch_model_folder=str(torch_folder), mlflow_model_folder=str(mlflow_folder))


def save_mlflow_model(hf_dir: Path, dest: Path, base_model: str) -> None:
    """An MLflow pyfunc model whose artifact ``model`` is the transformers folder."""
    import mlflow
    import torch
    import transformers

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    mlflow.pyfunc.save_model(
        path=str(tmp),
        python_model=str(CHAT_MODEL_CODE),
        artifacts={"model": str(hf_dir)},
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"transformers=={transformers.__version__}",
            f"mlflow=={mlflow.__version__}",
        ],
        metadata={"base_model": base_model, "task": "chat-completion"},
    )
    tmp.replace(dest)


def merged_copy(tuned: FineTuned, dest: Path) -> Path:
    """Base + adapter merged into a full folder, so serving needs no PEFT."""
    from transformers import AutoTokenizer

    from chattune.train.scoring import load_model

    model = load_model(tuned.final_model, tuned.base_model_dir).merge_and_unload()
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(tuned.final_model).save_pretrained(dest)
    return dest
