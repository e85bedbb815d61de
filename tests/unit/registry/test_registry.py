"""Registry: versions link the job's weights, load anywhere, carry labels, lineage and an
MLflow registered-model version; deleting a served version is refused."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from chattune import Client
from chattune.errors import ConflictError, NotFoundError
from chattune.registry.api import hf_folder

SRC = Path(__file__).resolve().parents[3] / "src"
HELLO = {"messages": [{"role": "user", "content": "Say hello"}]}


def unique_bytes(*roots: Path) -> int:
    """Disk use of the files under ``roots``, each inode counted once (like `du`)."""
    seen: dict[tuple[int, int], int] = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                st = path.stat()
                seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def test_version_links_the_weights_and_adds_under_a_tenth_of_them(
    workspace: Path, completed_job: str, packaged: Path
) -> None:
    client = Client(workspace)
    weights = (packaged / "final" / "model.safetensors").stat()
    before = unique_bytes(packaged, workspace)
    model = client.models.register(job=completed_job, name="tiny-chat")
    registered = hf_folder(model.path) / "model.safetensors"
    assert registered.stat().st_ino == weights.st_ino  # one copy, hard-linked
    added = unique_bytes(packaged, workspace) - before
    assert added < 0.1 * weights.st_size, added  # the acceptance bound is 1.1x; it is ~0

    shutil.rmtree(packaged / "final")  # the job's files go; the version keeps what it needs
    assert registered.stat().st_size == weights.st_size


def test_copied_version_loads_elsewhere_with_no_path_of_this_machine(
    workspace: Path, completed_job: str, tmp_path: Path
) -> None:
    import mlflow

    model = Client(workspace).models.register(job=completed_job, name="tiny-chat")
    moved = tmp_path / "other-machine" / "tiny-chat"
    shutil.copytree(model.path, moved)
    for needle in (str(workspace), str(SRC), str(Path.home() / ".cache")):
        found = subprocess.run(["grep", "-r", "-l", needle, str(moved)], capture_output=True)
        assert found.returncode == 1, f"{needle} in {found.stdout.decode()}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning on load or predict fails the test
        loaded = mlflow.pyfunc.load_model(str(moved))
        one = loaded.predict(HELLO, params={"max_new_tokens": 4})
        two = loaded.predict([HELLO["messages"], HELLO["messages"]], params={"max_new_tokens": 2})
    assert isinstance(one, str) and one
    tokenizer = loaded.unwrap_python_model().tokenizer
    assert len(tokenizer(one, add_special_tokens=False)["input_ids"]) <= 4 + 1  # strip/merge
    assert isinstance(two, list) and len(two) == 2


def test_params_are_honoured_and_request_parameters_apply(
    workspace: Path, completed_job: str
) -> None:
    import mlflow

    model = Client(workspace).models.register(job=completed_job, name="tiny-chat")
    loaded = mlflow.pyfunc.load_model(model.path)
    tokenizer = loaded.unwrap_python_model().tokenizer
    long = loaded.predict(HELLO, params={"max_new_tokens": 12})
    short = loaded.predict(
        {"input_data": {"input_string": [HELLO["messages"]], "parameters": {"max_new_tokens": 2}}}
    )
    assert isinstance(short, str)  # one conversation given as [conversation] → a string
    assert long.startswith(short)  # greedy: the 2-token answer is the 12-token one's prefix
    assert len(tokenizer(long)["input_ids"]) > len(tokenizer(short)["input_ids"])
    stop = tokenizer.decode(tokenizer(long, add_special_tokens=False)["input_ids"][3:5]).strip()
    cut = loaded.predict(HELLO, params={"max_new_tokens": 12, "stop": [stop]})
    assert stop not in cut and long.startswith(cut)


def test_labels_archive_and_delete(workspace: Path, completed_job: str) -> None:
    models = Client(workspace).models
    models.register(job=completed_job, name="m")
    models.register(job=completed_job, name="m")
    assert models.label("m", "1", "prod").labels == ["prod"]
    assert models.label("m", "2", "prod").labels == ["latest", "prod"]  # prod moved
    assert models.show("m", "1").labels == []
    assert models.resolve("m@prod").version == "2"
    assert models.unlabel("m", "2", "prod").labels == ["latest"]
    with pytest.raises(NotFoundError, match="no label 'prod'"):
        models.unlabel("m", "2", "prod")

    models.archive("m", "1")
    assert [v.version for v in models.list("m")] == ["2"]
    assert [v.version for v in models.list("m", archived=True)] == ["2", "1"]
    ref, folder = models.resolve_for_serving("m:1")  # still deployable by its version
    assert ref == "m:1" and (folder / "config.json").exists()

    models.delete("m", "2")
    assert not Path(models.ws.model_dir("m", "2")).exists()
    with pytest.raises(NotFoundError):
        models.show("m", "2")


def test_delete_of_a_served_version_is_refused_naming_endpoint_and_deployment(
    workspace: Path, completed_job: str
) -> None:
    client = Client(workspace)
    model = client.models.register(job=completed_job, name="m")
    store = client.models.store
    store.endpoints.insert("my-ep", "127.0.0.1", "key")
    store.endpoints.insert_deployment("my-ep", "blue", "m:1", str(model.path), {})
    with pytest.raises(ConflictError, match="served by deployment 'blue' of endpoint 'my-ep'"):
        client.models.delete("m", "1")
    assert Path(model.path).exists()


def test_each_version_is_an_mlflow_registered_version_with_aliases(
    workspace: Path, completed_job: str
) -> None:
    import mlflow

    models = Client(workspace).models
    models.register(job=completed_job, name="tiny-chat", version="2026-11-29")
    models.register(job=completed_job, name="tiny-chat")
    models.label("tiny-chat", "2026-11-29", "prod")
    client = mlflow.MlflowClient(tracking_uri=models.ws.mlflow_connect_uri)
    assert [m.name for m in client.search_registered_models()] == ["tiny-chat"]
    prod = client.get_model_version_by_alias("tiny-chat", "prod")
    assert prod.tags["chattune.version"] == "2026-11-29"
    assert prod.tags["chattune.job"] == completed_job
    latest = client.get_model_version_by_alias("tiny-chat", "latest")
    assert latest.tags["chattune.version"] == "1"  # the newest registration

    mlflow.set_tracking_uri(models.ws.mlflow_connect_uri)
    mlflow.set_registry_uri(models.ws.mlflow_connect_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = mlflow.pyfunc.load_model("models:/tiny-chat@latest").predict(
            HELLO, params={"max_new_tokens": 4}
        )
    assert isinstance(out, str) and out

    models.delete("tiny-chat", "1")  # chattune's latest and MLflow's follow the delete
    assert models.show("tiny-chat").version == "2026-11-29"
    latest = client.get_model_version_by_alias("tiny-chat", "latest")
    assert latest.tags["chattune.version"] == "2026-11-29"


def test_lineage_from_the_endpoint_has_the_files_sha256sum(
    workspace: Path, completed_job: str, data_file: Path
) -> None:
    client = Client(workspace)
    model = client.models.register(job=completed_job, name="m")
    client.models.store.endpoints.insert("my-ep", "127.0.0.1", "key")
    client.models.store.endpoints.insert_deployment("my-ep", "blue", "m:1", model.path, {})
    found = client.models.endpoint_lineage("my-ep")
    (d,) = found["deployments"]
    sha256sum = subprocess.run(["sha256sum", str(data_file)], capture_output=True, text=True)
    assert d["data"] == [
        {"split": "train", "path": str(data_file), "sha256": sha256sum.stdout.split()[0], "rows": 1}
    ]
    assert d["deployment"] == "blue" and d["model"]["ref"] == "m:1"
    assert d["job"]["name"] == completed_job
    assert d["base_model"] == {
        "name": "tiny-random-phi3",
        "version": "1",
        "source": "offline:tiny-random-phi3",
    }
    assert d["parameters"] == {"learning_rate": 1e-3}
    assert d["metrics"] == {"test_loss": 1.5}
    assert client.models.lineage("m", "1")["data"] == d["data"]
