from pathlib import Path

import pytest

from chattune.errors import ValidationError
from chattune.jobs.spec import parse_spec
from chattune.train import validate
from chattune.train.results import Hooks

ROW = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"precision": 16},
            r"parameters precision 16 need a CUDA GPU.*precision: bf16 \(trains on CPU\)",
        ),
        ({"number_of_gpu_to_use_finetuning": 2}, "number_of_gpu_to_use_finetuning need a CUDA"),
        ({"num_nodes_finetune": 2}, "num_nodes_finetune 2 needs rendezvous_endpoint"),
    ],
)
def test_cuda_only_settings_fail_in_validate_on_cpu(tmp_path: Path, params, expected) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    (tmp_path / "t.jsonl").write_text(ROW)
    spec = parse_spec(
        {
            "model": "tiny-random-phi3",
            "data": {"train": str(tmp_path / "t.jsonl")},
            "parameters": params,
        }
    )
    data = {"train": str(tmp_path / "t.jsonl")}
    with pytest.raises(ValidationError, match=expected):
        validate.run(spec.model, data, spec.parameters, Hooks())


REFERENCE = {  # the reference platform's spec: DeepSpeed ZeRO-2 on 2 GPUs, LoRA
    "apply_deepspeed": True,
    "deepspeed_stage": 2,
    "number_of_gpu_to_use_finetuning": 2,
    "apply_lora": True,
}


def _validate(tmp_path: Path, params: dict) -> None:
    (tmp_path / "t.jsonl").write_text(ROW)
    spec = parse_spec(
        {
            "model": "tiny-random-phi3",
            "data": {"train": str(tmp_path / "t.jsonl")},
            "parameters": params,
        }
    )
    validate.run(spec.model, {"train": str(tmp_path / "t.jsonl")}, spec.parameters, Hooks())


def test_the_reference_deepspeed_spec_on_cpu_says_how_to_run_it_there(tmp_path: Path) -> None:
    import importlib.util

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(
            ValidationError, match=r"needs the deepspeed package.*chattune\[deepspeed\]"
        ):
            _validate(tmp_path, REFERENCE)
        pytest.skip("deepspeed is not installed (pip install 'chattune[deepspeed]')")
    with pytest.raises(ValidationError) as err:
        _validate(tmp_path, REFERENCE)
    text = str(err.value)
    assert "\n" not in text and "need a CUDA GPU, and this machine has none" in text
    assert "to run the same on CPU set processes: 2" in text
    _validate(tmp_path, REFERENCE | {"processes": 2})  # passes: DeepSpeed runs on CPU


def test_data_digest_is_what_sha256sum_prints(tmp_path: Path) -> None:
    import hashlib

    (tmp_path / "t.jsonl").write_text(ROW)
    expected = hashlib.sha256(ROW.encode()).hexdigest()
    assert validate.file_digest(tmp_path / "t.jsonl") == expected


def test_fsdp_on_a_cpu_is_refused_not_run_as_plain_ddp() -> None:
    import torch

    from chattune.train.params import TrainParams

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs FSDP")
    with pytest.raises(ValidationError) as err:
        validate.check_compute(TrainParams(fsdp=True, processes=2))
    text = str(err.value)
    assert "\n" not in text and "parameters fsdp need a CUDA GPU" in text
    assert "FSDP only on GPUs" in text and "plain DDP" in text, text
    assert "run it on a CUDA machine" in text and "deepspeed_stage: 3" in text, text


def test_the_cpu_hint_for_gpus_does_not_offer_fsdp() -> None:
    import torch

    from chattune.train.params import TrainParams

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValidationError) as err:
        validate.check_compute(TrainParams(number_of_gpu_to_use_finetuning=2))
    assert "processes: 2" in str(err.value) and "fsdp" not in str(err.value), err.value
