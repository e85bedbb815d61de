"""chattune touches transformers' Trainer and PEFT's models through their public seams only.

An ast walk over every module under ``src/chattune/`` fails on any attribute use, call,
``getattr``/``hasattr``/``setattr`` by name, method override or keyword argument that names
a ``_``-prefixed member (dunders aside) of ``transformers.Trainer``, ``TrainerCallback``,
``TrainerState``, ``TrainingArguments``, ``peft.PeftModel`` or ``peft.tuners.lora.LoraModel``
(checked against ``dir()`` of each, less what ``torch.nn.Module`` defines, plus the
``self._x`` attributes their source assigns): such members change without notice between
releases, and checkpointing or resume would change with them.

Private keyword arguments of their public methods count too (``save_model(out,
_internal_call=True)``): a ``_``-prefixed keyword is the library saying "not for you", so
any call that passes one to a method these classes define is refused.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "chattune"


@cache
def _members() -> tuple[frozenset[str], frozenset[str]]:
    """(private members, public members) of the guarded classes."""
    import peft
    import torch
    import transformers
    from peft.tuners.lora import LoraModel

    classes = [
        transformers.Trainer,
        transformers.TrainerCallback,
        transformers.TrainerState,
        transformers.TrainingArguments,
        peft.PeftModel,
        LoraModel,
    ]
    torch_module = set(dir(torch.nn.Module))  # inherited from torch, not defined by PEFT
    names = {n for cls in classes for n in dir(cls)} - torch_module
    names |= {n for cls in classes for n in _instance_attributes(cls)}
    dunder = {n for n in names if n.startswith("__") and n.endswith("__")}
    private = {n for n in names - dunder if n.startswith("_")}
    return frozenset(private), frozenset(n for n in names if not n.startswith("_"))


def _instance_attributes(cls: type) -> set[str]:
    """``self.X = ...`` targets in the source of ``cls`` and its bases (``_tr_loss`` lives on
    the instance only, so ``dir(cls)`` misses it)."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith(("torch", "builtins", "typing")):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            store = isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            if store and isinstance(node.value, ast.Name) and node.value.id == "self":
                found.add(node.attr)
    return found


def violations(source: str, filename: str = "<src>") -> list[str]:
    """Each use of a guarded private member in ``source``: ``file:line what``."""
    private, public = _members()
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append(f"{where} uses {node.attr}")
        elif isinstance(node, ast.ClassDef):
            methods = [
                i for i in node.body if isinstance(i, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            found += [f"{where} overrides {m.name}" for m in methods if m.name in private]
        elif isinstance(node, ast.Call):
            found += _call_violations(node, where, private, public)
    return found


def _call_violations(
    node: ast.Call, where: str, private: frozenset[str], public: frozenset[str]
) -> list[str]:
    found = []
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in {"getattr", "hasattr", "setattr", "delattr"} and len(node.args) >= 2:
        arg = node.args[1]
        if isinstance(arg, ast.Constant) and arg.value in private:
            found.append(f"{where} {name}(..., {arg.value!r})")
    for kw in node.keywords:
        if kw.arg is None:
            continue
        if kw.arg in private or (kw.arg.startswith("_") and name in public):
            found.append(f"{where} passes {kw.arg}= to {name}")
    return found


def test_no_module_under_src_touches_a_private_trainer_or_peft_member() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += violations(path.read_text(), str(path.relative_to(SRC.parent)))
    assert not found, "\n".join(found)


def test_the_walk_catches_each_form_of_private_use() -> None:
    """The guard itself can fail: each form it refuses, in a snippet."""
    snippets = {
        "self._tr_loss.item()": "uses _tr_loss",
        "super()._maybe_log_save_evaluate(a, b)": "uses _maybe_log_save_evaluate",
        "class T(Trainer):\n    def _save_checkpoint(self): ...": "overrides _save_checkpoint",
        "getattr(self, '_total_loss_scalar', 0.0)": "getattr(..., '_total_loss_scalar')",
        "self.save_model(out, _internal_call=True)": "passes _internal_call= to save_model",
        "model._mark_only_adapters_as_trainable(m)": "uses _mark_only_adapters_as_trainable",
    }
    for code, expected in snippets.items():
        found = violations(code)
        assert len(found) == 1 and found[0].endswith(expected), (code, found)
    assert violations("self.save_model(out)\nself.state.global_step\nx._tick = 1") == []
