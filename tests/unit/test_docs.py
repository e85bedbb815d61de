"""The documentation: a strict mkdocs build, a short README, and a parameter reference that
comes from the code (every field described, the committed page current, the CLI's help
naming the same parameters and defaults)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chattune.serving.settings import DeploymentSettings
from chattune.train.params import TrainParams

ROOT = Path(__file__).resolve().parents[2]


def gen_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs/gen_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_field_has_a_description() -> None:
    for model in (TrainParams, DeploymentSettings):
        missing = [n for n, f in model.model_fields.items() if not (f.description or "").strip()]
        assert not missing, f"{model.__name__}: fields without a docstring: {missing}"
    assert gen_reference().undocumented() == []


def test_committed_reference_is_current() -> None:
    page = ROOT / "docs/reference/parameters.md"
    assert page.read_text() == gen_reference().render(), (
        "docs/reference/parameters.md is stale: run `python docs/gen_reference.py`"
    )


def test_reference_states_each_default_and_range() -> None:
    text = gen_reference().render()
    assert "| `max_steps` | int | `-1` | -1 (use num_train_epochs) or 1 to 2147483647 |" in text
    assert "| `max_batch_size` | int | `16` | >= 1 and <= 1024 |" in text
    assert "| `liveness_probe` | [ProbeSettings](#probesettings) | initial_delay `600.0` |" in text


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (`pip install -c constraints.txt -e .[dev]`)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    page = (site / "reference/parameters/index.html").read_text()
    assert all(name in page for name in TrainParams.model_fields)
    assert not (site / "gen_reference.py").exists()


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert readme.index("make demo") < readme.index("## The flow")
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", readme)
    assert links and all((ROOT / link).is_file() for link in links), links


def test_jobs_create_help_names_every_parameter() -> None:
    from chattune.cli import jobs

    doc = jobs.create.__doc__ or ""
    listed = doc.split("describes each):", 1)[1].split("The validate stage", 1)[0]
    names = {
        name.strip()
        for group in re.split(r"[;.]", listed)
        for name in group.split(":", 1)[-1].split(",")
        if name.strip()
    }
    fields = set(TrainParams.model_fields)
    assert names == fields, f"missing: {fields - names}; unknown: {names - fields}"
    assert not re.search(r"\w\[[^\]]*\]", doc), "no hand-written [default] in the help"


def test_deployment_option_defaults_agree_with_the_settings() -> None:
    import typer.models

    from chattune.cli import endpoints

    fields = DeploymentSettings.model_fields
    aliases = {"max_concurrent_requests": "max_concurrent_requests_per_instance"}
    checked = 0
    for option in vars(endpoints).values():
        if not isinstance(option, typer.models.OptionInfo) or "default" not in (option.help or ""):
            continue
        flag = next(d for d in option.param_decls if d.startswith("--"))
        name = aliases.get(flag[2:].replace("-", "_"), flag[2:].replace("-", "_"))
        if name not in fields:
            continue
        default = fields[name].get_default(call_default_factory=True)
        help_text = option.help or ""
        if "(default: --" in help_text:  # another option's value
            assert default is None, (flag, help_text, default)
        elif stated := re.search(r"\(default (\d+)\)", help_text):
            assert int(stated[1]) == default, (flag, help_text, default)
        else:
            stated = re.search(r"(\w+) \(default[):]", help_text)
            assert stated and stated[1] == default, (flag, help_text, default)
        checked += 1
    assert checked >= 3
