"""Architecture guard: STYLE.md's layers, no upward import, no import cycle.

cli → studio, azureml → client → serving/registry/jobs → train → compute → catalog → data →
store → workspace → errors. A module may import its own package or any lower layer; never a higher
one, never a sibling at its own layer. Imports under ``if TYPE_CHECKING:`` are ignored (they
never run). The CLI may only use the SDK (``chattune.client``) and errors, and the studio
only from ``cli/studio.py``. The studio and ``azureml`` (the platform SDK's surface) are over
the SDK only: they import ``client`` and errors, nothing below them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import chattune

ROOT = Path(chattune.__file__).parent
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"studio", "azureml"},
    {"__init__"},
    {"client"},
    {"serving", "registry", "jobs"},
    {"train"},
    {"compute"},
    {"catalog"},
    {"data"},
    {"store"},
    {"workspace"},
    {"errors"},
]
CLI_MAY_IMPORT = {"cli", "client", "errors"}
CLI_STUDIO_MODULE = "chattune.cli.studio"
STUDIO_MAY_IMPORT = {"studio", "client", "errors"}
AZUREML_MAY_IMPORT = {"azureml", "client", "errors"}


def rank(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def runtime_imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(module, line) of every ``chattune`` import that runs (not under TYPE_CHECKING)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("chattune."):
                    yield name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("chattune."):
                    yield alias.name, node.lineno


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("chattune", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(mods: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in mods.items():
        here = top(name)
        for target, line in runtime_imports(ast.parse(path.read_text())):
            there = top(target)
            if there == here or (target not in mods and target.rsplit(".", 1)[0] not in mods):
                continue
            where = f"{name} (line {line}) imports {target}"
            if here == "cli" and there == "studio" and name == CLI_STUDIO_MODULE:
                continue
            if here == "cli" and there not in CLI_MAY_IMPORT:
                problems.append(f"{where}: the CLI only calls the SDK")
            elif here == "studio" and there not in STUDIO_MAY_IMPORT:
                problems.append(f"{where}: the studio is over the SDK only")
            elif here == "azureml" and there not in AZUREML_MAY_IMPORT:
                problems.append(f"{where}: chattune.azureml is over the SDK only")
            elif rank(there) <= rank(here) and here != "cli":
                problems.append(f"{where}: {here} may not import {there} (same or higher layer)")
    return problems


def cycles(mods: dict[str, Path]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for target, _ in runtime_imports(ast.parse(path.read_text())):
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in mods and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    found, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])
    return found


def test_no_upward_or_sibling_imports() -> None:
    assert layer_violations(modules()) == []


def test_no_import_cycles() -> None:
    assert cycles(modules()) == []


def test_the_guard_catches_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "jobs").mkdir()
    bad = tmp_path / "store" / "x.py"
    bad.write_text("from chattune.jobs.y import f\n")
    other = tmp_path / "jobs" / "y.py"
    other.write_text("from chattune.store.x import g\n")
    mods = {"chattune.store.x": bad, "chattune.jobs.y": other}
    assert any("store may not import jobs" in p for p in layer_violations(mods))
    assert cycles(mods) == [["chattune.jobs.y", "chattune.store.x", "chattune.jobs.y"]]


def test_the_studio_is_over_the_sdk_only(tmp_path: Path) -> None:
    """The studio may use the client, never what is below it; only ``cli/studio.py`` starts
    the studio."""
    files = {
        "chattune.studio.x": "from chattune.jobs.api import JobsAPI\n",
        "chattune.studio.y": "from chattune.client import Client\n",
        "chattune.cli.jobs": "from chattune.studio.y import f\n",
        "chattune.cli.studio": "from chattune.studio.y import f\n",
        "chattune.jobs.api": "",
        "chattune.client": "",
    }
    mods = {}
    for name, source in files.items():
        path = tmp_path / (name.replace(".", "_") + ".py")
        path.write_text(source)
        mods[name] = path
    problems = layer_violations(mods)
    assert any("studio.x" in p and "over the SDK only" in p for p in problems)
    assert any("cli.jobs" in p and "only calls the SDK" in p for p in problems)
    assert not any(p.startswith(("chattune.studio.y", "chattune.cli.studio")) for p in problems)


def test_azureml_is_over_the_sdk_only(tmp_path: Path) -> None:
    """``chattune.azureml`` maps names to the SDK: it may not reach below the client."""
    files = {
        "chattune.azureml.x": "from chattune.serving.settings import ProbeSettings\n",
        "chattune.azureml.y": "from chattune.client import Client\n",
        "chattune.serving.settings": "",
        "chattune.client": "",
    }
    mods = {}
    for name, source in files.items():
        path = tmp_path / (name.replace(".", "_") + ".py")
        path.write_text(source)
        mods[name] = path
    problems = layer_violations(mods)
    assert {p.split(" ")[0] for p in problems} == {"chattune.azureml.x"}
    assert "over the SDK only" in problems[0]


def test_sql_lives_only_in_the_store() -> None:
    """No module outside ``store/`` talks to a database driver or runs SQL itself."""
    outside = []
    for name, path in modules().items():
        if top(name) == "store":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            imported = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(m.split(".")[0] in ("sqlite3", "sqlalchemy", "psycopg") for m in imported):
                outside.append(f"{name} (line {node.lineno})")
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany"):
                outside.append(f"{name} (line {node.lineno}) calls .{node.attr}")
    assert outside == []
