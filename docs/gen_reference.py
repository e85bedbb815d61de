"""The parameter reference, rendered from the pydantic models' field docstrings.

``python docs/gen_reference.py`` rewrites ``docs/reference/parameters.md``; mkdocs runs this
file as a hook (``hooks:`` in mkdocs.yml), so every build publishes the page from the code as
it is. ``tests/unit/test_docs.py`` checks that the committed page is current and that every
field has a description.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
PAGE = "reference/parameters.md"
HEAD = """# Parameter reference

Generated from the pydantic models' field docstrings by `docs/gen_reference.py` (do not edit
by hand: change the docstring in the code). "allowed" is what a value is checked against when
it is read; a spec or a setting outside it is refused with a one-line error naming the key.
"""


def _models() -> list[tuple[type[BaseModel], str]]:
    """(model, what it is) in page order."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    from chattune.jobs.spec import DataSpec, JobSpec, Settings
    from chattune.serving.settings import DeploymentSettings, ProbeSettings
    from chattune.train.params import TrainParams

    return [
        (JobSpec, "The keys of a job spec (YAML): `chattune jobs create -f job.yaml`."),
        (DataSpec, "`data:` of a job spec: chat data files by split."),
        (Settings, "`settings:` of a job spec: how the pipeline runs."),
        (
            TrainParams,
            "`parameters:` of a job spec. Values the spec leaves out come from the model card's "
            "`model_specific_defaults`, then from the defaults below; "
            "`chattune jobs create --dry-run` shows each effective value and its source.",
        ),
        (
            DeploymentSettings,
            "How a deployment runs: `chattune deployments create` options or "
            "`client.endpoints.create_deployment(..., NAME=VALUE)`.",
        ),
        (ProbeSettings, "`liveness_probe` and `readiness_probe` of a deployment (seconds)."),
    ]


def _parts(annotation: Any) -> tuple[list[Any], list[Any], bool]:
    """(base types, Annotated metadata, allows None) of a possibly optional annotation."""
    bases: list[Any] = []
    metadata: list[Any] = []
    optional = False
    args = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = list(typing.get_args(annotation))
    for arg in args:
        if arg is type(None):
            optional = True
        elif typing.get_origin(arg) is typing.Annotated:
            bases.append(typing.get_args(arg)[0])
            metadata.extend(arg.__metadata__)
        else:
            bases.append(arg)
    return bases, metadata, optional


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "choice"
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return f"[{kind.__name__}](#{kind.__name__.lower()})"
    if typing.get_origin(kind) is not None:
        return str(kind).replace("typing.", "")
    return getattr(kind, "__name__", str(kind))


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" or value.isdigit() else f"`{value}`"
    return f"`{value!r}`"


def type_text(field: FieldInfo) -> str:
    bases, _, optional = _parts(field.annotation)
    text = " or ".join(_type_name(b) for b in bases)
    return f"{text} or unset" if optional else text


def allowed_text(field: FieldInfo) -> str:
    """The field's range or choices, from its annotation and constraints."""
    bases, metadata, _ = _parts(field.annotation)
    parts = [getattr(m, "allowed", None) for m in [*metadata, *field.metadata]]
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    bounds = [
        f"{sign} {getattr(m, key)}"
        for key, sign in signs.items()
        for m in field.metadata
        if isinstance(m, annotated_types.BaseMetadata) and getattr(m, key, None) is not None
    ]
    if bounds:
        parts.append(" and ".join(bounds))
    for base in bases:
        if typing.get_origin(base) is typing.Literal:
            parts.append("one of " + ", ".join(_value(c) for c in typing.get_args(base)))
    return "; ".join(p for p in parts if p)


def default_text(field: FieldInfo) -> str:
    if field.default_factory is None:
        return "required" if field.default is PydanticUndefined else _value(field.default)
    value = field.default_factory()  # type: ignore[call-arg]
    if not isinstance(value, BaseModel):
        return "generated"
    fields = type(value).model_fields
    changed = {
        name: getattr(value, name)
        for name, info in fields.items()
        if getattr(value, name) != info.get_default(call_default_factory=True)
    }
    if not changed:
        return "the defaults below"
    return ", ".join(f"{k} {_value(v)}" for k, v in changed.items())


def _cell(text: str) -> str:
    text = re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))
    return text.replace("|", "\\|")


def table(model: type[BaseModel]) -> str:
    rows = ["| name | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        cells = [f"`{name}`", type_text(field), default_text(field), allowed_text(field)]
        rows.append("| " + " | ".join(_cell(c) for c in [*cells, field.description or ""]) + " |")
    return "\n".join(rows)


def undocumented() -> list[str]:
    """``Model.field`` for every field without a description (the test wants none)."""
    return [
        f"{model.__name__}.{name}"
        for model, _ in _models()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]


def render() -> str:
    sections = [HEAD]
    for model, what in _models():
        doc = (model.__doc__ or "").strip().split("\n\n")[0]
        sections.append(f"## {model.__name__}\n\n{what} {_cell(doc)}\n\n{table(model)}\n")
    return "\n".join(sections)


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: publish the page rendered from the code, whatever the committed copy says."""
    from mkdocs.structure.files import File

    old = files.get_file_from_path(PAGE)
    if old is not None:
        files.remove(old)
    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    target = ROOT / "docs" / PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target.relative_to(ROOT)}")
