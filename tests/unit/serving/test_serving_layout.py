"""The serving package keeps its rooms apart: imports by process, short functions, no SQL."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chattune.cli.endpoints
import chattune.serving

SERVING = Path(chattune.serving.__file__).parent
SHARED = {
    "http",
    "protocol",
    "responses",
    "routes",
    "settings",
    "traffic",
    "keys",
    "procs",
    "vllm_env",
    "pairs",
}
SDK = {"endpoints", "deployments", "info", "invoke", "engines", "mirror_compare"}
UPWARD = (
    "chattune.jobs",
    "chattune.registry",
    "chattune.client",
    "chattune.cli",
    "chattune.studio",
)
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(SERVING.rglob("*.py"))


def imported(path: Path, *, skip_type_checking: bool = False) -> set[str]:
    """Every module ``path`` imports (``from x import y`` counts as ``x`` and ``x.y``)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if skip_type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for n in ast.walk(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def room(module: str) -> str:
    """``gateway``, ``worker``, ``sdk`` or ``shared`` for a ``chattune.serving...`` name."""
    parts = module.split(".")[2:]
    if not parts:
        return "package"
    if parts[0] in ("gateway", "worker"):
        return parts[0]
    return "sdk" if parts[0] in SDK else "shared" if parts[0] in SHARED else "unknown"


ALLOWED = {
    "shared": {"shared"},
    "gateway": {"shared", "gateway"},
    "worker": {"shared", "worker"},
    "sdk": {"shared", "sdk"},
    "package": set(),
}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SERVING)))
def test_each_room_imports_only_itself_and_the_shared_modules(path: Path) -> None:
    name = ".".join(("chattune", "serving", *path.relative_to(SERVING).with_suffix("").parts))
    own = room(name.removesuffix(".__init__").removesuffix(".__main__"))
    assert own != "unknown", f"{name}: add it to SHARED or SDK in this test"
    for module in imported(path):
        assert not module.startswith(UPWARD), f"{name} imports {module} (an upper layer)"
        if module.startswith("chattune.serving.") and module.count(".") >= 2:
            target = room(module)
            if target != "unknown":  # a name imported from a module, e.g. ``procs.spawn``
                assert target in ALLOWED[own], f"{name} ({own}) imports {module} ({target})"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SERVING)))
def test_no_function_over_sixty_lines_and_no_sql(path: Path) -> None:
    text = path.read_text()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.name} has {length} lines"
    assert "execute(" not in text and "sqlite3" not in text, f"{path.name}: SQL belongs in store/"


def test_cli_calls_only_the_sdk() -> None:
    allowed = ("chattune.cli", "chattune.errors")
    for module in imported(Path(chattune.cli.endpoints.__file__), skip_type_checking=True):
        if module.startswith("chattune"):
            assert module.startswith(allowed), f"cli/endpoints.py imports {module}"
