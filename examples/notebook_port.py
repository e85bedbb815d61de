# ruff: noqa: E402, SIM102  (the notebook imports in the cell that uses a name)
"""The reference notebook (chat-completion fine-tuning of Phi-3-mini-4k-instruct on
ultrachat_200k), ported to this machine with ``chattune.azureml``. One block per notebook
cell; the lines marked ``# ported`` are the only ones that differ from the notebook.

Run it in an empty folder: ``python examples/notebook_port.py`` (minutes on a laptop CPU).
It trains tiny-random-phi3 for 2 steps; for a real run set ``model_name`` to
``SmolLM2-135M-Instruct`` (CPU) or ``Phi-3-mini-4k-instruct`` (GPU, hub access) and drop
``max_steps``.
"""

# --- 1. client --------------------------------------------------------------------------
import ast
import json
import os
import sys
import time

from chattune.azureml import Input, MLClient  # ported
from chattune.azureml.identity import DefaultAzureCredential, InteractiveBrowserCredential  # ported

try:
    credential = DefaultAzureCredential()
    credential.get_token("https://management.azure.com/.default")
except Exception:
    credential = InteractiveBrowserCredential()

try:
    workspace_ml_client = MLClient.from_config(credential=credential)
except Exception:
    workspace_ml_client = MLClient(
        credential,
        subscription_id="<SUBSCRIPTION_ID>",
        resource_group_name="<RESOURCE_GROUP>",
        workspace_name="<WORKSPACE_NAME>",
    )
registry_ml_client = MLClient(credential, registry_name="azureml")
experiment_name = "chat_completion_Phi-3-mini-4k-instruct"
timestamp = str(int(time.time()))

# --- 2. foundation model ----------------------------------------------------------------
model_name = "tiny-random-phi3"  # ported
foundation_model = registry_ml_client.models.get(model_name, label="latest")
print(
    f"\n\nUsing model name: {foundation_model.name}, version: {foundation_model.version}, "
    f"id: {foundation_model.id} for fine tuning"
)

# --- 3. compute -------------------------------------------------------------------------
if "finetune_compute_allow_list" in foundation_model.tags:
    computes_allow_list = ast.literal_eval(foundation_model.tags["finetune_compute_allow_list"])
    print(f"Please create a compute from the above list - {computes_allow_list}")
else:
    computes_allow_list = None
    print("`finetune_compute_allow_list` is not part of model tags")

compute_cluster = "local"  # ported
compute = workspace_ml_client.compute.get(compute_cluster)
if compute.provisioning_state.lower() == "failed":
    raise ValueError(f"Provisioning failed, Compute '{compute_cluster}' is in failed state.")
if computes_allow_list is not None:
    if compute.size.lower() not in [x.lower() for x in computes_allow_list]:
        raise ValueError(f"VM size {compute.size} is not in the allow-listed computes")
gpu_count_found = False
available_sku_sizes = []
for compute_sku in workspace_ml_client.compute.list_sizes():
    available_sku_sizes.append(compute_sku.name)
    if compute_sku.name.lower() == compute.size.lower():
        gpus_per_node = compute_sku.gpus
        gpu_count_found = True
if not gpu_count_found:
    raise ValueError(f"Number of GPU's in compute {compute.size} not found: {available_sku_sizes}")
print(f"Number of GPU's in compute {compute.size}: {gpus_per_node}")

# --- 4. data ----------------------------------------------------------------------------
exit_status = os.system(
    f"{sys.executable} -m chattune.azureml.download_dataset --dataset ultrachat-sample "  # ported
    "--download_dir ultrachat_200k_dataset --dataset_split_pc 5"
)
if exit_status != 0:
    raise Exception("Error downloading dataset")

try:
    import pandas as pd

    pd.set_option("display.max_colwidth", None)  # pandas 2+: None (was 0) means no limit
    df = pd.read_json("./ultrachat_200k_dataset/train_sft.jsonl", lines=True)
    print(df.head())
except ImportError:  # pandas is not a chattune dependency
    pd = None

# --- 5. fine-tuning parameters ----------------------------------------------------------
training_parameters = dict(
    num_train_epochs=3,
    per_device_train_batch_size=1,
    per_device_eval_batch_size=1,
    learning_rate=5e-6,
    lr_scheduler_type="cosine",
    max_steps=2,  # ported
)
optimization_parameters = dict(
    apply_lora="true",
    apply_deepspeed="false",  # ported: DeepSpeed needs a GPU
    deepspeed_stage=2,
)
finetune_parameters = {**training_parameters, **optimization_parameters}
if "model_specific_defaults" in foundation_model.tags:
    print("Warning! Model specific defaults exist. The defaults could be overridden.")
    finetune_parameters.update(ast.literal_eval(foundation_model.tags["model_specific_defaults"]))
print(f"The following finetune parameters are going to be set for the run: {finetune_parameters}")


def get_pipeline_display_name():
    batch_size = (
        int(finetune_parameters.get("per_device_train_batch_size", 1))
        * int(finetune_parameters.get("gradient_accumulation_steps", 1))
        * int(gpus_per_node or 1)
        * int(finetune_parameters.get("num_nodes_finetune", 1))
    )
    scheduler = finetune_parameters.get("lr_scheduler_type", "linear")
    deepspeed = finetune_parameters.get("apply_deepspeed", "false")
    ds_stage = finetune_parameters.get("deepspeed_stage", "2")
    ds_string = f"ds{ds_stage}" if deepspeed == "true" else "nods"
    lora_string = "lora" if finetune_parameters.get("apply_lora", "false") == "true" else "nolora"
    save_limit = finetune_parameters.get("save_total_limit", -1)
    seq_len = finetune_parameters.get("max_seq_length", -1)
    return (
        f"{model_name}-ultrachat-bs{batch_size}-{scheduler}-{ds_string}-{lora_string}"
        f"-save_limit{save_limit}-seqlen{seq_len}"
    )


pipeline_display_name = get_pipeline_display_name()
print(f"Display name used for the run: {pipeline_display_name}")

# --- 6. pipeline ------------------------------------------------------------------------
from chattune.azureml.dsl import pipeline  # ported

pipeline_component_func = registry_ml_client.components.get(
    name="chat_completion_pipeline", label="latest"
)


@pipeline(name=pipeline_display_name)
def create_pipeline():
    chat_completion_pipeline = pipeline_component_func(
        mlflow_model_path=foundation_model.id,
        compute_model_import=compute_cluster,
        compute_preprocess=compute_cluster,
        compute_finetune=compute_cluster,
        compute_model_evaluation=compute_cluster,
        train_file_path=Input(type="uri_file", path="./ultrachat_200k_dataset/train_sft.jsonl"),
        test_file_path=Input(type="uri_file", path="./ultrachat_200k_dataset/test_sft.jsonl"),
        number_of_gpu_to_use_finetuning=gpus_per_node,
        **finetune_parameters,
    )
    return {"trained_model": chat_completion_pipeline.outputs.mlflow_model_folder}


pipeline_object = create_pipeline()
pipeline_object.settings.force_rerun = True
pipeline_object.settings.continue_on_step_failure = False

# --- 7. submit --------------------------------------------------------------------------
pipeline_job = workspace_ml_client.jobs.create_or_update(
    pipeline_object, experiment_name=experiment_name
)
workspace_ml_client.jobs.stream(pipeline_job.name)

# --- 8. register ------------------------------------------------------------------------
from chattune.azureml.constants import AssetTypes  # ported
from chattune.azureml.entities import Model  # ported

print("pipeline job outputs: ", workspace_ml_client.jobs.get(pipeline_job.name).outputs)
model_path_from_job = f"azureml://jobs/{pipeline_job.name}/outputs/trained_model"
finetuned_model_name = (model_name + "-ultrachat-200k").replace("/", "-")
print("path to register model: ", model_path_from_job)
prepare_to_register_model = Model(
    path=model_path_from_job,
    type=AssetTypes.MLFLOW_MODEL,
    name=finetuned_model_name,
    version=timestamp,
    description=model_name + " fine tuned model for ultrachat 200k chat-completion",
)
print("prepare to register model: \n", prepare_to_register_model)
registered_model = workspace_ml_client.models.create_or_update(prepare_to_register_model)
print("registered model: \n", registered_model)

# --- 9. endpoint ------------------------------------------------------------------------
from chattune.azureml.entities import (  # ported
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    OnlineRequestSettings,
    ProbeSettings,
)

online_endpoint_name = "ultrachat-completion-" + timestamp
endpoint = ManagedOnlineEndpoint(
    name=online_endpoint_name,
    description="Online endpoint for "
    + registered_model.name
    + ", fine tuned model for ultrachat-200k-chat-completion",
    auth_mode="key",
)
workspace_ml_client.begin_create_or_update(endpoint).wait()

# --- 10. deployment ---------------------------------------------------------------------
instance_type = "local-cpu"  # ported
if "inference_compute_allow_list" in foundation_model.tags:
    inference_computes_allow_list = ast.literal_eval(
        foundation_model.tags["inference_compute_allow_list"]
    )
    print(f"Please create a compute from the above list - {inference_computes_allow_list}")
else:
    inference_computes_allow_list = None
    print("`inference_compute_allow_list` is not part of model tags")
demo_deployment = ManagedOnlineDeployment(
    name="demo",
    endpoint_name=online_endpoint_name,
    model=registered_model.id,
    instance_type=instance_type,
    instance_count=1,
    liveness_probe=ProbeSettings(initial_delay=600),
    request_settings=OnlineRequestSettings(request_timeout_ms=90000),
)
workspace_ml_client.online_deployments.begin_create_or_update(demo_deployment).wait()
endpoint.traffic = {"demo": 100}
workspace_ml_client.begin_create_or_update(endpoint).result()

# --- 11. score --------------------------------------------------------------------------
with open("./ultrachat_200k_dataset/test_gen.jsonl") as f:
    test_messages = json.loads(f.readline())["messages"]  # ends with the assistant's answer
test_json = {
    "input_data": {
        "input_string": [test_messages],
        "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 20},
    },
    "params": {},
}
with open("./ultrachat_200k_dataset/sample_score.json", "w") as f:
    json.dump(test_json, f)
response = workspace_ml_client.online_endpoints.invoke(
    endpoint_name=online_endpoint_name,
    deployment_name="demo",
    request_file="./ultrachat_200k_dataset/sample_score.json",
)
print("raw response: \n", response, "\n")

# --- 12. delete -------------------------------------------------------------------------
workspace_ml_client.online_endpoints.begin_delete(name=online_endpoint_name).wait()
