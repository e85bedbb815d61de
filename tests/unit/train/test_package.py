"""Stage `package` on a real LoRA adapter: files hard-linked, the adapter's base recorded by
catalog name / hub id, and no path of this machine in the MLflow model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from chattune.train import package
from chattune.train.results import FineTuned, Hooks


def _adapter(base: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj"], task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def test_package_links_files_and_records_portable_paths(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    final = _adapter(tiny_model_dir, tmp_path / "finetune" / "final")
    assert json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"]
    tuned = FineTuned(
        final_model=str(final),
        adapter_only=True,
        base_model_dir=str(tiny_model_dir),
        checkpoints_dir=str(tmp_path / "finetune"),
        best_checkpoint=None,
        global_step=1,
        train_loss=1.0,
        train_rows=1,
    )
    out = package.run(tuned, "tiny-random-phi3@latest", tmp_path / "package", Hooks())

    packaged = Path(out.pytorch_model_folder) / "final"
    config = json.loads((packaged / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-random-phi3"
    weights = "adapter_model.safetensors"
    assert (packaged / weights).stat().st_ino == (final / weights).stat().st_ino
    original = json.loads((final / "adapter_config.json").read_text())
    assert original["base_model_name_or_path"] == str(tiny_model_dir)  # untouched, not shared

    mlflow_folder = Path(out.mlflow_model_folder)
    merged = mlflow_folder / "artifacts" / "model" / "model.safetensors"
    assert (
        merged.stat().st_ino
        == (tmp_path / "package" / "merged" / "model.safetensors").stat().st_ino
    )
    pyfunc = yaml.safe_load((mlflow_folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert pyfunc["model_code_path"] == "mlflow_chat_model.py"
    assert pyfunc["artifacts"] == {"model": {"path": "artifacts/model"}}
    source_tree = Path(package.__file__).parents[2]
    for needle in (str(tmp_path), str(tiny_model_dir), str(source_tree)):
        found = subprocess.run(["grep", "-rl", needle, str(mlflow_folder)], capture_output=True)
        assert found.returncode == 1, found.stdout


def test_portable_base_names() -> None:
    assert package.portable_base("Phi-3-mini-4k-instruct") == "microsoft/Phi-3-mini-4k-instruct"
    assert package.portable_base("hf://org/model") == "org/model"
    assert package.portable_base("SmolLM2-135M-Instruct:1") == "SmolLM2-135M-Instruct"
