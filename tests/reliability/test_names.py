"""Names, versions and file arguments that try to leave the workspace are refused in one line,
and nothing is written outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chattune import Client
from chattune.compute.targets import new_target
from chattune.errors import ChattuneError, ValidationError
from chattune.serving.traffic import check_name

ESCAPES = {
    "dot-dot": "../evil",
    "deep dot-dot": "ok/../../evil",
    "dot-dot alone": "..",
    "absolute": "/tmp/evil",
    "NUL": "ev\x00il",
    "300 chars": "a" * 300,
    "trailing newline": "evil\n",
    "inner newline": "ev\nil",
    "backslash": "..\\evil",
}


def _one_line(err: ChattuneError) -> None:
    assert "\n" not in str(err).replace("\\n", ""), repr(str(err))


@pytest.fixture
def client(workspace: Path) -> Client:
    return Client(workspace)


@pytest.mark.parametrize("name", list(ESCAPES.values()), ids=list(ESCAPES))
def test_endpoint_deployment_and_compute_names_are_refused(name: str) -> None:
    for kind in ("endpoint", "deployment", "node"):
        with pytest.raises(ValidationError) as err:
            check_name(kind, name)
        _one_line(err.value)
    with pytest.raises(ValidationError) as err:
        new_target(name, "local", None)
    _one_line(err.value)


@pytest.mark.parametrize("name", list(ESCAPES.values()), ids=list(ESCAPES))
def test_model_names_and_versions_are_refused(client: Client, name: str) -> None:
    with pytest.raises(ValidationError) as err:
        client.models.register(job="no-such-job", name=name)
    _one_line(err.value)
    with pytest.raises(ValidationError) as err:
        client.models.register(job="no-such-job", name="fine", version=name)
    _one_line(err.value)
    with pytest.raises(ValidationError) as err:
        client.models.label("fine", "1", name)
    _one_line(err.value)


@pytest.mark.parametrize("name", list(ESCAPES.values()), ids=list(ESCAPES))
def test_job_names_are_refused_before_anything_runs(client: Client, name: str, tmp_path) -> None:
    spec = {"name": name, "model": "tiny-random-phi3", "data": {"train": str(tmp_path / "t.jsonl")}}
    with pytest.raises(ValidationError) as err:
        client.jobs.create(spec)
    _one_line(err.value)
    assert not (client.workspace.root / "jobs").exists() or not any(
        (client.workspace.root / "jobs").iterdir()
    )


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "ev\x00il", "a" * 300, "x\n"])
def test_lookups_by_hostile_names_are_one_line_not_found(client: Client, name: str) -> None:
    for lookup in (client.jobs.get, client.endpoints.get, client.compute.get):
        with pytest.raises(ChattuneError) as err:
            lookup(name)
        _one_line(err.value)
    with pytest.raises(ChattuneError) as err:
        client.models.show(name)
    _one_line(err.value)


def test_a_symlinked_job_folder_is_not_followed_out_of_the_workspace(
    client: Client, tmp_path: Path
) -> None:
    """A name is only a key: even a symlink planted in the workspace does not make a create
    with a valid name write outside it (the spec is refused before any folder is touched)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    jobs = client.workspace.root / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, jobs / "link")
    spec = {"name": "link", "model": "tiny-random-phi3", "data": {"train": str(tmp_path / "none")}}
    with pytest.raises(ChattuneError) as err:
        client.jobs.create(spec)
    _one_line(err.value)
    assert list(outside.iterdir()) == []


NEWLINE_COMMANDS = [
    ["deployments", "show", "ev\nil", "--endpoint", "my-ep"],
    ["deployments", "logs", "ev\nil", "--endpoint", "my-ep"],
    ["deployments", "delete", "ev\nil", "--endpoint", "my-ep"],
    ["endpoints", "show", "ev\nil"],
    ["jobs", "show", "ev\nil"],
    ["models", "show", "ev\nil"],
]


def test_a_newline_in_a_name_never_splits_an_error(workspace: Path) -> None:
    from tests.e2e.cli import chattune

    client = Client(workspace)
    client.endpoints.create("my-ep")  # deployment commands get as far as the name
    try:
        for args in NEWLINE_COMMANDS:
            done = chattune(*args, check=False, timeout=60)
            assert done.returncode != 0, args
            assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
            assert "ev\\nil" in done.stderr, (args, done.stderr)
    finally:
        client.endpoints.delete("my-ep")
