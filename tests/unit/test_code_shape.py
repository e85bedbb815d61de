"""STYLE.md's shape rules that a reader feels first: no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import chattune

ROOT = Path(chattune.__file__).parent
MAX_FUNCTION_LINES = 60


def test_no_function_over_60_lines() -> None:
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert long == []
