"""`chattune models label/unlabel/archive/delete/show --lineage` and `endpoints show
--lineage` through the real CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.cli import chattune

from chattune import Client


def test_lifecycle_and_lineage_commands(
    workspace: Path, completed_job: str, data_file: Path
) -> None:
    chattune("models", "register", "--job", completed_job, "--name", "m", "--version", "a")
    chattune("models", "register", "--job", completed_job, "--name", "m", "--version", "b")
    assert "m:a labels: prod" in chattune("models", "label", "m:a", "prod").stdout
    store = Client(workspace).models.store
    store.endpoints.insert("my-ep", "127.0.0.1", "key")
    store.endpoints.insert_deployment("my-ep", "blue", "m:a", "unused", {})

    found = json.loads(chattune("endpoints", "show", "my-ep", "--lineage", "--json").stdout)
    sha256sum = subprocess.run(["sha256sum", str(data_file)], capture_output=True, text=True)
    (d,) = found["deployments"]
    assert d["data"][0]["sha256"] == sha256sum.stdout.split()[0]
    assert (d["deployment"], d["model"]["ref"], d["job"]["name"]) == ("blue", "m:a", "j")
    assert d["base_model"]["source"] == "offline:tiny-random-phi3"
    text = chattune("endpoints", "show", "my-ep", "--lineage").stdout
    assert "deployment blue" in text and sha256sum.stdout.split()[0] in text
    shown = json.loads(chattune("models", "show", "m:a", "--lineage", "--json").stdout)
    assert shown["data"] == d["data"] and shown["metrics"] == {"test_loss": 1.5}

    refused = chattune("models", "delete", "m:a", check=False)
    assert refused.returncode == 4
    assert refused.stderr.strip().splitlines() == [
        "error: model m:a is served by deployment 'blue' of endpoint 'my-ep' (fix: delete the "
        "deployment first: `chattune deployments delete blue --endpoint my-ep`)"
    ]
    out = workspace.parent / "exported"
    wrote = chattune("models", "export", "m:a", "--format", "merged", "--to", str(out)).stdout
    assert "model.safetensors" in wrote and (out / "config.json").is_file()
    bad_format = chattune("models", "export", "m:a", "--format", "onnx", "--to", "x", check=False)
    assert bad_format.returncode == 3
    assert bad_format.stderr.startswith("error: --format 'onnx' is not known")
    chattune("models", "archive", "m:b")
    listed = json.loads(chattune("models", "list", "--json").stdout)
    assert [m["ref"] for m in listed] == ["m:a"]
    assert "m:b labels: none" in chattune("models", "unlabel", "m:b", "latest").stdout
    chattune("models", "delete", "m:b")
    bad = chattune("models", "label", "m", "prod", check=False)
    assert bad.returncode == 3 and "has no version" in bad.stderr
