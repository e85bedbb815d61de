"""Reading a job spec's YAML strictly: a bounded regular file, UTF-8, no duplicate keys.

PyYAML alone takes the last of two ``model:`` keys silently, raises ``ValueError`` on an
integer past Python's 4,300-digit limit, reads a FIFO forever and decodes lone surrogates
(``"\\ud800"``) that nothing later can encode. Each of those is a one-line
:class:`~chattune.errors.ValidationError` here, naming the file and line.

>>> strict_load("a: 1\\nb: [x]\\n", "job.yaml")
{'a': 1, 'b': ['x']}
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from chattune.data.text import SURROGATE_HINT, invalid_text, surrogate_message
from chattune.errors import NotFoundError, ValidationError

MAX_SPEC_BYTES = 1 << 20
"""A job spec is a page of YAML; 1 MiB is far past any real one."""


def read_spec_text(path: Path) -> str:
    """The spec file's text: a regular file, at most :data:`MAX_SPEC_BYTES`, UTF-8."""
    try:
        info = path.stat()
    except OSError:
        raise NotFoundError(
            f"job spec {path} not found", "pass the path of a job YAML with -f"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError(
            f"{path}: not a regular file (a folder, FIFO or device)",
            "pass the path of a job YAML file with -f",
        )
    with path.open("rb") as handle:
        data = handle.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise ValidationError(
            f"{path}: larger than {MAX_SPEC_BYTES // 1024} KiB; a job spec is a page of YAML",
            "put data in data files and name them under data:",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValidationError(
            f"{path}:{line}: not UTF-8 text (byte {exc.start + 1} of the file)",
            "save the spec as UTF-8",
        ) from None


def strict_load(text: str, source: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys, oversized integers and lone
    surrogates, each as one line naming ``source`` and the line."""
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ValidationError(
            f"{where}: not valid YAML ({exc.problem or exc})", "fix the YAML at that line"
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{source}: not valid YAML ({exc})", "fix the YAML") from None
    bad = invalid_text(raw)
    if bad is not None:
        raise ValidationError(f"{source}: {surrogate_message(*bad)}", SURROGATE_HINT)
    return raw


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with duplicate keys and unparseable integers as marked errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key]}, again on line {line}); "
                    "keep one",
                    key_node.start_mark,
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            digits = len(str(node.value))
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {digits} digits is too large", node.start_mark
            ) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
