from pathlib import Path

import pytest

from chattune.errors import ValidationError
from chattune.jobs.api import stored_spec
from chattune.jobs.spec import effective_yaml, load_spec, parse_spec, resolve_parameters
from chattune.train.params import TrainParams, effective_parameters

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_parses(path: Path) -> None:
    spec = load_spec(path)
    assert spec.model and spec.data.train


def test_unknown_key_is_named_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text(
        "model: tiny-random-phi3\ndata:\n  train: t.jsonl\nparameters:\n  lerning_rate: 0.1\n"
    )
    with pytest.raises(ValidationError) as err:
        load_spec(bad)
    assert str(err.value).startswith(f"{bad}:5: parameters.lerning_rate: unknown key")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        parse_spec(
            {"data": {"train": "x"}, "parameters": {"lr_scheduler_type": "cosin", "lora_r": 0}}
        )
    text = str(err.value)
    assert "model: Field required" in text
    assert "parameters.lr_scheduler_type" in text
    assert "parameters.lora_r" in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("model: x\ndata: [\n")
    with pytest.raises(ValidationError, match=r"job.yaml:\d+: not valid YAML"):
        load_spec(bad)


def test_model_defaults_fill_only_what_the_spec_leaves_out() -> None:
    spec = parse_spec({"model": "m", "data": {"train": "t"}, "parameters": {"lora_r": 4}})
    effective = effective_parameters(spec.parameters, {"lora_r": 16, "learning_rate": 1e-3})
    params = effective.params
    assert params.lora_r == 4
    assert params.learning_rate == 1e-3
    assert params.num_train_epochs == TrainParams().num_train_epochs
    assert effective.sources["lora_r"] == "spec"
    assert effective.sources["learning_rate"] == "model card"
    assert effective.sources["num_train_epochs"] == "default"


def test_stored_spec_keeps_only_user_set_parameters() -> None:
    spec = parse_spec({"model": "m", "data": {"train": "t"}, "parameters": {"lora_r": 4}})
    again = parse_spec(stored_spec(spec))
    assert again.parameters.model_fields_set == {"lora_r"}
    assert again.name == spec.name


def test_precision_accepts_numbers_like_the_reference_pipeline() -> None:
    spec = parse_spec({"model": "m", "data": {"train": "t"}, "parameters": {"precision": 16}})
    assert spec.parameters.precision == "16"


def test_effective_yaml_shows_what_trains_with_its_source_and_loads_back(tmp_path: Path) -> None:
    spec = parse_spec(
        {"model": "SmolLM2-135M-Instruct", "data": {"train": "t"}, "parameters": {"lora_r": 4}}
    )
    text = effective_yaml(spec, resolve_parameters(spec))
    assert "  learning_rate: 0.0002  # model card\n" in text
    assert "  max_seq_length: 512  # model card\n" in text
    assert "  lora_r: 4  # spec\n" in text
    assert "  num_train_epochs: 1.0  # default\n" in text
    (tmp_path / "spec.yaml").write_text(text)
    again = load_spec(tmp_path / "spec.yaml")
    assert again.parameters == resolve_parameters(spec).params


def test_overrides_apply_to_a_jobspec_as_to_a_mapping(tmp_path: Path, workspace: Path) -> None:
    """``jobs.create/plan(JobSpec, overrides=...)`` used to drop the overrides silently."""
    from chattune import Client
    from chattune.jobs.spec import JobSpec

    (tmp_path / "train.jsonl").write_text("{}\n")
    data = {"train": str(tmp_path / "train.jsonl")}
    spec = JobSpec(model="tiny-random-phi3", data=data, parameters={"max_steps": 2})
    jobs = Client(workspace).jobs
    plan = jobs.plan(spec, overrides={"experiment": "mine", "parameters": {"lora_r": 4}})
    assert "experiment: mine" in plan.spec_yaml
    assert plan.name == spec.name  # the spec's name is kept
    assert plan.parameters["lora_r"] == {"value": 4, "source": "spec"}
    assert plan.parameters["max_steps"]["source"] == "default"  # overrides replace a key whole
    assert jobs.plan(spec).parameters["max_steps"] == {"value": 2, "source": "spec"}
    other = jobs.plan(spec, overrides={"model": "SmolLM2-135M-Instruct"})
    assert "experiment: chat_completion_SmolLM2-135M-Instruct" in other.spec_yaml


def test_catalog_cards_and_registered_models_have_an_id() -> None:
    from chattune.catalog.cards import get_card
    from chattune.store.models import RegisteredModel

    assert get_card("tiny-random-phi3").id == "tiny-random-phi3:1"
    model = RegisteredModel("tuned", "3", "/p", None, None, "", {}, [], {}, 0.0)
    assert model.id == "tuned:3"
