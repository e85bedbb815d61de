"""``client.jobs.parameters()``: every parameter a spec takes, with its default (the form)."""

from __future__ import annotations

from pathlib import Path

from chattune.client import Client
from chattune.jobs.spec import JobSpec


def test_parameters_match_the_spec_and_its_defaults(workspace: Path) -> None:
    found = Client(workspace).jobs.parameters()
    assert set(found) == set(JobSpec.model_fields["parameters"].annotation.model_fields)  # type: ignore[union-attr]
    assert found["learning_rate"]["default"] == 2e-5 and found["learning_rate"]["type"] == "float"
    assert found["precision"]["choices"] == ["32", "16", "bf16"]
    assert found["max_steps"]["type"] == "int" and "epochs" in found["max_steps"]["description"]
    packing = found["packing"]
    assert (packing["default"], packing["type"], packing["choices"]) == (True, "bool", None)
    assert all(entry["description"] for entry in found.values())  # every field documented
