"""The resource estimate: exact parameter counts from the config, LoRA's trainable count as
PEFT builds it, and a peak memory that a real training step does not exceed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from chattune.catalog.cards import CATALOG
from chattune.compute.estimate import Architecture, TrainingShape, estimate, lora_targets
from chattune.compute.fit import Room, check, model_config
from chattune.errors import ValidationError
from chattune.train.params import TrainParams


@pytest.mark.parametrize("card", CATALOG, ids=lambda c: c.name)
def test_parameter_count_from_the_config_is_the_cards(card) -> None:
    arch = Architecture.from_config(model_config(card.name))
    assert arch.num_parameters == card.num_parameters


def test_shape_defaults_are_the_job_parameter_defaults() -> None:
    # processes (None: 1) and deepspeed_stage (None: no DeepSpeed) are spelled differently.
    for f in fields(TrainingShape):
        if f.name in TrainParams.model_fields and f.name not in ("processes", "deepspeed_stage"):
            assert TrainParams.model_fields[f.name].default == f.default, f.name


@pytest.mark.parametrize(("r", "targets"), [(8, None), (3, ["qkv_proj", "down_proj"])])
def test_lora_trainable_count_is_what_peft_builds(tiny_model_dir: Path, r, targets) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    every = sum(p.numel() for p in model.parameters())
    config = LoraConfig(r=r, target_modules=targets or "all-linear", task_type="CAUSAL_LM")
    peft = get_peft_model(model, config)
    built = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    arch = Architecture.from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    shape = TrainingShape(lora_r=r, lora_target_modules=targets)
    assert estimate(arch, shape).trainable_parameters == built
    assert estimate(arch, shape.but(apply_lora=False)).trainable_parameters == every


def test_smollm2_lora_targets_match_peft_on_the_meta_device() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = model_config("SmolLM2-135M-Instruct")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    peft = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear"))
    built = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    shape = TrainingShape(lora_r=16)
    assert estimate(Architecture.from_config(config), shape).trainable_parameters == built


def test_unknown_lora_target_names_the_model_layers() -> None:
    arch = Architecture.from_config(model_config("tiny-random-phi3"))
    with pytest.raises(ValidationError, match=r"no such layer.*use some of: qkv_proj, o_proj"):
        lora_targets(arch, ["q_proj"])


def test_memory_grows_with_what_should_grow_it() -> None:
    arch = Architecture.from_config(model_config("SmolLM2-135M-Instruct"))
    base = TrainingShape(max_seq_length=512)
    need = {
        name: estimate(arch, shape).per_process_gb
        for name, shape in {
            "base": base,
            "full": base.but(apply_lora=False),
            "r64": base.but(lora_r=64),
            "bf16": base.but(precision="bf16"),
            "long": base.but(max_seq_length=1024),
            "batch": base.but(per_device_train_batch_size=2),
        }.items()
    }
    assert need["base"] < min(need["full"], need["r64"], need["long"], need["batch"])
    assert need["bf16"] < need["base"]
    assert estimate(arch, base.but(processes=2)).total_gb == pytest.approx(2 * need["base"])


def test_what_would_fit_is_named_and_fits() -> None:
    arch = Architecture.from_config(model_config("SmolLM2-135M-Instruct"))
    shape = TrainingShape(apply_lora=False, max_seq_length=8192, per_device_train_batch_size=4)
    fit = check(arch, shape, Room("local-cpu", 40.0))
    assert not fit.fits and fit.need_gb > 40
    assert any(s.startswith("max_seq_length: ") for s in fit.suggestions)
    big_r = check(arch, TrainingShape(lora_r=1_000_000, max_seq_length=512), Room("local-cpu", 8))
    (suggestion,) = big_r.suggestions
    r = int(suggestion.split()[1])
    assert check(arch, TrainingShape(lora_r=r, max_seq_length=512), Room("local-cpu", 8)).fits


_PEAK = """
import json, resource, sys, torch
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model
model = get_peft_model(AutoModelForCausalLM.from_pretrained(sys.argv[1]),
                       LoraConfig(r=8, target_modules="all-linear"))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
ids = torch.randint(0, 1000, (1, int(sys.argv[2])))
for _ in range(2):
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def test_estimate_bounds_a_real_training_steps_peak_memory(tiny_model_dir: Path) -> None:
    seq = 2048  # long enough for activations to dominate the process's fixed memory
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(tiny_model_dir), str(seq)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    peak_gb = float(out.stdout.split()[-1])
    arch = Architecture.from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    estimated = estimate(arch, TrainingShape(max_seq_length=seq)).per_process_gb
    assert peak_gb <= estimated <= 2 * peak_gb, (peak_gb, estimated)
