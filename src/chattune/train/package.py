"""Stage `package`: a PyTorch model folder and an MLflow model that ``mlflow.pyfunc`` loads.

The weights are stored once: both folders hard-link the fine-tuned model's files (a copy
only where the filesystem refuses links), and so do registered versions (registry/). Nothing
in the MLflow model names a path of this machine: the code is stored relative to the model
and the base model is recorded by catalog name or hub id.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path

from chattune.train import faults
from chattune.train.results import FineTuned, Hooks, Packaged

CHAT_MODEL_CODE = Path(__file__).with_name("mlflow_chat_model.py")


def run(tuned: FineTuned, base_model: str, out: Path, hooks: Hooks) -> Packaged:
    """Write ``pytorch_model_folder`` (final + best checkpoint) and ``mlflow_model_folder``."""
    torch_folder = out / "pytorch_model_folder"
    mlflow_folder = out / "mlflow_model_folder"
    for folder in (torch_folder, mlflow_folder):
        if folder.exists():
            shutil.rmtree(folder)
    base = portable_base(base_model)
    link_tree(Path(tuned.final_model), torch_folder / "final")
    if tuned.best_checkpoint:
        link_tree(Path(tuned.best_checkpoint), torch_folder / "best")
    serve_dir = Path(tuned.final_model)
    faults.hit("package")
    if tuned.adapter_only:
        set_adapter_base(torch_folder / "final", base)
        serve_dir = merged_copy(tuned, out / "merged")
    save_mlflow_model(serve_dir, mlflow_folder, base)
    hooks.log.info("packaged %s and %s (weights hard-linked)", torch_folder, mlflow_folder)
    return Packaged(pytorch_model_folder=str(torch_folder), mlflow_model_folder=str(mlflow_folder))


def save_mlflow_model(hf_dir: Path, dest: Path, base_model: str) -> None:
    """An MLflow pyfunc model whose artifact ``model`` links the transformers folder's files.

    MLflow would copy the artifact; it gets an empty folder instead, filled with links after.
    """
    import mlflow
    import torch
    import transformers
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    tmp = dest.with_name(dest.name + ".tmp")
    empty = dest.with_name(dest.name + ".empty") / "model"
    for stale in (tmp, empty.parent):
        shutil.rmtree(stale, ignore_errors=True)
    empty.mkdir(parents=True)
    params = ParamSchema(
        [
            ParamSpec("max_new_tokens", "long", 128),
            ParamSpec("temperature", "double", 1.0),
            ParamSpec("top_p", "double", 1.0),
            ParamSpec("do_sample", "boolean", False),
            ParamSpec("stop", "string", [], shape=(-1,)),
        ]
    )
    with warnings.catch_warnings():
        try:
            # An input example would make MLflow load and run the model while saving it.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            mlflow.pyfunc.save_model(
                path=str(tmp),
                python_model=str(CHAT_MODEL_CODE),
                artifacts={"model": str(empty)},
                signature=ModelSignature(inputs=None, params=params),
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"transformers=={transformers.__version__}",
                    f"mlflow=={mlflow.__version__}",
                ],
                metadata={"base_model": base_model, "task": "chat-completion"},
            )
        finally:
            shutil.rmtree(empty.parent, ignore_errors=True)
    _strip_local_paths(tmp / "MLmodel")
    artifact = tmp / "artifacts" / "model"
    shutil.rmtree(artifact, ignore_errors=True)
    link_tree(hf_dir, artifact)
    tmp.replace(dest)


def _strip_local_paths(mlmodel: Path) -> None:
    # MLflow records where the code and artifacts came from on this machine; loading needs
    # neither (it joins the code's base name and the artifact's relative path to the folder).
    import yaml

    meta = yaml.safe_load(mlmodel.read_text())
    pyfunc = meta["flavors"]["python_function"]
    pyfunc["model_code_path"] = Path(pyfunc["model_code_path"]).name
    for artifact in pyfunc.get("artifacts", {}).values():
        artifact.pop("uri", None)
    mlmodel.write_text(yaml.safe_dump(meta, sort_keys=False))


def link_tree(source: Path, dest: Path) -> None:
    """``dest`` as a tree of hard links to ``source``'s files (copies where links fail).

    Files are never changed in place afterwards (writers replace them), so sharing is safe.
    """
    for root, _dirs, files in os.walk(source):
        here = dest / Path(root).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(root) / name, here / name)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(Path(root) / name, here / name)


def portable_base(model_ref: str) -> str:
    """The base model as another machine resolves it: hub id, else catalog name."""
    from chattune.catalog import sources

    ref = sources.parse(model_ref)
    if ref.hub_id:
        return ref.hub_id
    if ref.card is not None:
        return ref.card.name
    return Path(model_ref).name


def set_adapter_base(adapter_dir: Path, base: str) -> None:
    """Point a PEFT adapter at ``base`` (a new file, so the linked original is untouched)."""
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        return
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    tmp.replace(config_path)


def merged_copy(tuned: FineTuned, dest: Path) -> Path:
    """Base + adapter merged into a full folder, so serving needs no PEFT."""
    from transformers import AutoTokenizer

    from chattune.train.scoring import load_model

    model = load_model(tuned.final_model, tuned.base_model_dir).merge_and_unload()
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(tuned.final_model).save_pretrained(dest)
    return dest
