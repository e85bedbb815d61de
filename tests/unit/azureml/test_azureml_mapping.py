"""Each ``chattune.azureml`` name maps to a call of chattune's SDK: fast checks, no job or
endpoint process (the notebook walk-through in tests/e2e runs those)."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chattune.azureml import Input, MLClient
from chattune.azureml.constants import AssetTypes
from chattune.azureml.dsl import pipeline
from chattune.azureml.endpoints import settings
from chattune.azureml.entities import (
    AmlCompute,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineRequestSettings,
    ProbeSettings,
)
from chattune.azureml.identity import DefaultAzureCredential, InteractiveBrowserCredential
from chattune.azureml.models import string_tags
from chattune.azureml.pipelines import job_spec, model_ref
from chattune.errors import ChattuneError, NotFoundError, ValidationError


@pytest.fixture
def clients(workspace: Path) -> tuple[MLClient, MLClient]:
    credential = DefaultAzureCredential()
    ws = MLClient(credential, "sub", "rg", "ws", workspace=workspace)
    return ws, MLClient(credential, registry_name="azureml", workspace=workspace)


def test_import_is_light_and_fast() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import chattune.azureml, "
        "chattune.azureml.entities, chattune.azureml.dsl, chattune.azureml.constants, "
        "chattune.azureml.identity; print(time.perf_counter() - t); "
        "print([m for m in ('torch', 'mlflow', 'transformers', 'datasets') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.splitlines()
    assert heavy == "[]"
    assert float(seconds) < 1.0


def test_credentials_are_accepted_and_give_a_token() -> None:
    for credential in (DefaultAzureCredential(), InteractiveBrowserCredential()):
        token = credential.get_token("https://management.azure.com/.default")
        assert token.token == "local" and token.expires_on > time.time()


def test_registry_models_are_catalog_cards_with_string_tags(clients) -> None:
    _, registry = clients
    model = registry.models.get("tiny-random-phi3", label="latest")
    assert (model.name, model.version, model.id) == ("tiny-random-phi3", "1", "tiny-random-phi3:1")
    assert ast.literal_eval(model.tags["finetune_compute_allow_list"]) == ["local-cpu", "local-gpu"]
    assert ast.literal_eval(model.tags["model_specific_defaults"])["learning_rate"] == 1e-3
    assert all(isinstance(v, str) for v in model.tags.values())
    assert model.path == "offline:tiny-random-phi3"
    assert string_tags({"a": "x", "b": [1], "c": {"d": True}}) == {
        "a": "x",
        "b": "[1]",
        "c": "{'d': True}",
    }
    with pytest.raises(NotFoundError, match="no label 'best'"):
        registry.models.get("tiny-random-phi3", label="best")


def test_a_registry_client_has_no_jobs_or_endpoints(clients) -> None:
    _, registry = clients
    with pytest.raises(ValidationError, match=r"registry client .* models and components only"):
        registry.jobs  # noqa: B018


def test_compute_is_this_machine_with_its_one_size(clients) -> None:
    ws, _ = clients
    here = ws.client.compute.show()["kind"]
    compute = ws.compute.get("local")
    assert (compute.size, compute.provisioning_state) == (here, "Succeeded")
    [size] = ws.compute.list_sizes()
    assert size.name == here and size.gpus == len(ws.client.compute.show()["gpus"])
    with pytest.raises(NotFoundError, match=r"'gpu-cluster-big' is not defined .*known: local"):
        ws.compute.get("gpu-cluster-big")
    with pytest.raises(ValidationError, match=f"'Standard_NC24ads_A100_v4' .*available: {here}"):
        ws.begin_create_or_update(AmlCompute(name="gpu", size="Standard_NC24ads_A100_v4"))
    ws.begin_create_or_update(AmlCompute(name="mine", size=here, max_instances=2)).wait()
    assert ws.compute.get("mine").size == here


def test_model_ids_of_either_form_become_chattune_references() -> None:
    assert model_ref("tiny-random-phi3:1") == "tiny-random-phi3:1"
    assert model_ref("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/7") == (
        "Phi-3-mini-4k-instruct:7"
    )
    assert model_ref("azureml://registries/azureml/models/x/labels/latest") == "x@latest"
    assert model_ref("azureml:tuned:3") == "tuned:3"
    assert model_ref(Model(name="tuned", version="2", id="tuned:2")) == "tuned:2"


def _pipeline_job(tmp_path: Path, **arguments: object):
    (tmp_path / "train.jsonl").write_text("{}\n")
    component = MLClient(registry_name="azureml").components.get(
        name="chat_completion_pipeline", label="latest"
    )

    @pipeline(name="tiny-random-phi3-ultrachat-bs1-cosine-nods-lora-save_limit-1-seqlen256-long")
    def create_pipeline():
        step = component(
            mlflow_model_path="tiny-random-phi3:1",
            compute_model_import="local",
            compute_preprocess="local",
            compute_finetune="local",
            compute_model_evaluation="local",
            train_file_path=Input(type="uri_file", path=str(tmp_path / "train.jsonl")),
            evaluation_config=Input(type="uri_file", path="eval.json"),
            **arguments,
        )
        return {"trained_model": step.outputs.mlflow_model_folder}

    job = create_pipeline()
    job.settings.force_rerun = True
    return job


def test_the_component_maps_to_one_job_spec(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = _pipeline_job(
        tmp_path,
        number_of_gpu_to_use_finetuning=0,
        apply_lora="true",
        apply_deepspeed="false",
        deepspeed_stage=2,
        learning_rate=5e-6,
        num_train_epochs=3,
        lora_target_modules=["qkv_proj"],
    )
    assert len(job.display_name) > 63 and job.name is None
    assert job.outputs == {"trained_model": job.step.outputs.mlflow_model_folder}
    spec = job_spec(
        job,
        {
            "apply_lora",
            "apply_deepspeed",
            "deepspeed_stage",
            "learning_rate",
            "num_train_epochs",
            "lora_target_modules",
        },
    )
    assert spec["model"] == "tiny-random-phi3:1" and spec["compute"] == "local"
    assert spec["data"] == {"train": str(tmp_path / "train.jsonl")}
    assert spec["parameters"] == {
        "apply_lora": True,
        "apply_deepspeed": False,
        "deepspeed_stage": 2,
        "learning_rate": 5e-6,
        "num_train_epochs": 3,
        "lora_target_modules": ["qkv_proj"],
    }
    assert spec["settings"]["force_rerun"] is True
    assert spec["description"] == job.display_name and "name" not in spec


def test_unknown_arguments_and_split_computes_are_refused(tmp_path: Path) -> None:
    job = _pipeline_job(tmp_path, beam_width=2)
    with pytest.raises(ValidationError, match="argument\\(s\\) beam_width not known"):
        job_spec(job, {"learning_rate"})
    job.step.kwargs["compute_finetune"] = "other"
    with pytest.raises(ValidationError, match="different computes"):
        job_spec(job, set())
    with pytest.raises(NotFoundError, match="component 'llm_pipeline' is not available"):
        MLClient(registry_name="azureml").components.get(name="llm_pipeline")


def test_deepspeed_on_a_cpu_machine_fails_at_creation_in_one_line(clients, tmp_path: Path) -> None:
    ws, _ = clients
    if ws.client.compute.show()["gpus"]:
        pytest.skip("this machine has a GPU")
    job = _pipeline_job(tmp_path, apply_deepspeed="true", number_of_gpu_to_use_finetuning=0)
    with pytest.raises(ValidationError) as caught:
        ws.jobs.create_or_update(job, experiment_name="exp")
    message = str(caught.value)
    assert message.startswith("apply_deepspeed=True: the local pipeline cannot honour this")
    assert "\n" not in message
    assert ws.client.jobs.list() == []  # nothing created


def test_a_model_not_allowed_on_this_machine_is_refused_at_creation(clients, tmp_path) -> None:
    ws, _ = clients
    if ws.client.compute.show()["gpus"]:
        pytest.skip("this machine has a GPU")
    job = _pipeline_job(tmp_path)
    job.step.kwargs["mlflow_model_path"] = "Phi-3-mini-4k-instruct:1"
    job.step.kwargs["apply_deepspeed"] = "false"
    job.step.kwargs["precision"] = "bf16"
    with pytest.raises(ValidationError, match="'local-cpu' is not in the model's allow-list"):
        ws.jobs.create_or_update(job)


def test_registering_needs_a_job_output_path_and_an_mlflow_model(clients) -> None:
    ws, _ = clients
    with pytest.raises(ValidationError, match="expected azureml://jobs/<job>/outputs/<output>"):
        ws.models.create_or_update(Model(path="./model", name="m", type=AssetTypes.MLFLOW_MODEL))
    with pytest.raises(ValidationError, match="only the job's MLflow model is registered"):
        ws.models.create_or_update(Model(path="azureml://jobs/j/outputs/trained_model", name="m"))
    with pytest.raises(ChattuneError, match="j"):  # an unknown job: chattune's own error
        ws.models.create_or_update(
            Model(path="azureml://jobs/j/outputs/trained_model", name="m", type="mlflow_model")
        )


def test_deployment_settings_map_probes_and_request_settings() -> None:
    deployment = ManagedOnlineDeployment(
        name="demo",
        endpoint_name="ep",
        model="tuned:1",
        instance_type="local-cpu",
        instance_count=2,
        liveness_probe=ProbeSettings(initial_delay=600),
        readiness_probe=ProbeSettings(period=5),
        request_settings=OnlineRequestSettings(request_timeout_ms=90000, max_queue_wait_ms=10),
    )
    assert settings(deployment) == {
        "instance_count": 2,
        "liveness_probe": {"initial_delay": 600},
        "readiness_probe": {"period": 5},
        "request_timeout_ms": 90000,
        "max_queue_wait_ms": 10,
    }
    only_period = ManagedOnlineDeployment("d", "ep", liveness_probe=ProbeSettings(period=3))
    assert settings(only_period)["liveness_probe"] == {"initial_delay": 600, "period": 3}


def test_an_unknown_instance_type_names_what_is_available(clients) -> None:
    ws, _ = clients
    here = ws.client.compute.show()["kind"]
    deployment = ManagedOnlineDeployment(
        "demo", "ep", model="tuned:1", instance_type="Standard_NC6s_v3"
    )
    with pytest.raises(ValidationError) as caught:
        ws.begin_create_or_update(deployment)
    assert str(caught.value).startswith(
        f"deployment demo: instance_type 'Standard_NC6s_v3' is not a size of this machine "
        f"(available: {here})"
    )


def test_endpoint_calls_on_a_missing_endpoint_are_chattune_errors(clients) -> None:
    ws, _ = clients
    with pytest.raises(NotFoundError, match="endpoint nope not found"):
        ws.online_endpoints.get("nope")
    with pytest.raises(NotFoundError, match="endpoint nope not found"):
        ws.online_endpoints.get_keys("nope")
    with pytest.raises(ValidationError, match="SomethingElse is not supported locally"):
        ws.begin_create_or_update(type("SomethingElse", (), {})())
    assert ManagedOnlineEndpoint(name="ep").auth_mode == "key"
