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
        ({"apply_deepspeed": True}, "parameters apply_deepspeed need a CUDA GPU"),
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


def test_data_digest_is_what_sha256sum_prints(tmp_path: Path) -> None:
    import hashlib

    (tmp_path / "t.jsonl").write_text(ROW)
    expected = hashlib.sha256(ROW.encode()).hexdigest()
    assert validate.file_digest(tmp_path / "t.jsonl") == expected
