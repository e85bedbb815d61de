import logging
from pathlib import Path

import pytest

from chattune.errors import ValidationError
from chattune.jobs.context import StageContext
from chattune.jobs.spec import parse_spec
from chattune.train import validate
from chattune.workspace import Workspace

ROW = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"precision": "bf16"}, "parameters precision bf16 need a CUDA GPU"),
        ({"apply_deepspeed": True}, "parameters apply_deepspeed need a CUDA GPU"),
        ({"num_nodes_finetune": 2}, "num_nodes_finetune need a CUDA GPU"),
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
    ctx = StageContext(Workspace(tmp_path), spec, spec.parameters, tmp_path, logging.getLogger())
    with pytest.raises(ValidationError, match=expected):
        validate.run(ctx)
