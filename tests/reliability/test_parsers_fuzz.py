"""hypothesis on the job-spec parser and the data validator: whatever the input, the only
exceptions are the documented one-line errors (bounded examples: seconds, not minutes)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chattune.data.readers import iter_conversations
from chattune.data.schema import Problem, conversation_problems
from chattune.errors import ChattuneError, NotFoundError, ValidationError
from chattune.jobs.spec import effective_yaml, load_spec, parse_spec, resolve_parameters
from chattune.train.params import TrainParams

BOUNDED = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
PARAMS = sorted(TrainParams.model_fields)
ROLES = st.sampled_from(["system", "user", "assistant", "developer", "tool", "", None])
messages = st.dictionaries(
    st.sampled_from(["role", "content", "weight", "name", "extra"]),
    ROLES | scalars | json_values,
    max_size=4,
)


def spec_like() -> st.SearchStrategy[dict[str, Any]]:
    """Mostly-right specs with a wrong value here and there (so validation goes deep)."""
    return st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=70) | scalars,
            "model": st.sampled_from(["tiny-random-phi3", "../x", "hf://a/b", ""]) | scalars,
            "compute": st.text(max_size=10) | scalars,
            "data": st.fixed_dictionaries(
                {}, optional={k: st.text(max_size=10) | scalars for k in ("train", "test", "x")}
            )
            | json_values,
            "parameters": st.dictionaries(
                st.sampled_from([*PARAMS, "lerning_rate"]), scalars | json_values, max_size=6
            )
            | json_values,
            "settings": json_values,
            "unknown": json_values,
        },
    )


@BOUNDED
@given(spec_like())
def test_parse_spec_raises_only_validation_errors(raw: dict[str, Any]) -> None:
    try:
        spec = parse_spec(raw, source="job.yaml")
        effective_yaml(spec, resolve_parameters(spec))  # what `jobs create` does next
    except ValidationError as err:
        assert err.message and err.hint
    except NotFoundError:
        pass  # an unknown catalog model


@BOUNDED
@given(st.text(max_size=300) | st.builds(lambda d: json.dumps(d), spec_like()))
def test_load_spec_on_any_text_raises_only_chattune_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.yaml"
        path.write_text(text)
        try:
            load_spec(path)
        except (ValidationError, NotFoundError) as err:
            assert str(err.message).startswith(str(path)) or "job.yaml" in err.message, err


@BOUNDED
@given(json_values | st.lists(messages, max_size=6))
def test_the_conversation_validator_reports_and_never_raises(value: Any) -> None:
    problems = conversation_problems(value)
    assert all(isinstance(p, Problem) and p.message for p in problems)
    for p in problems:
        assert "\n" not in p.field


@BOUNDED
@given(
    st.lists(
        st.binary(max_size=80) | st.builds(lambda v: json.dumps(v).encode(), json_values),
        max_size=5,
    )
)
def test_reading_any_jsonl_bytes_raises_only_the_data_errors(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.jsonl"
        path.write_bytes(b"\n".join(lines))
        try:
            rows = list(iter_conversations(path))
        except ChattuneError as err:  # DataValidationError / UnreadableDataError
            assert err.exit_code in (2, 3) and str(err)
        else:
            assert all(r.messages for r in rows)


@BOUNDED
@given(
    st.sampled_from(["json", "csv", "jsonl", "parquet"]),
    st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), json_values),
)
def test_reading_any_file_bytes_raises_only_the_data_errors(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{suffix}"
        path.write_bytes(data)
        try:
            list(iter_conversations(path))
        except ChattuneError as err:
            assert err.exit_code in (2, 3) and str(err)
