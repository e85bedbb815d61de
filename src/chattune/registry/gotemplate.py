"""A renderer for the subset of Go's ``text/template`` that chattune's Ollama TEMPLATE uses.

Ollama renders a Modelfile's TEMPLATE with Go's ``text/template``; ``export`` checks the
template it writes against the model's own chat template by rendering it here. Supported,
with Go's semantics: text; ``{{- ... -}}`` trimming; ``{{ range $i, $m := PIPE }}`` and
``{{ range PIPE }}`` (``.`` is the element); ``{{ if PIPE }} / {{ else if PIPE }} /
{{ else }} / {{ end }}``; ``{{ $x := PIPE }}`` (scoped to its block) and ``{{ $x = PIPE }}``
(assigns the nearest one); fields (``.Role``, ``$.Messages``, ``$m.Content``); string,
integer and boolean literals; the functions ``eq``, ``ne``, ``and``, ``or``, ``not``,
``len``, ``slice`` (one index) and parenthesized calls. Anything else raises ValueError.
"""

from __future__ import annotations

import re
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+)')


def render(template: str, data: dict[str, Any]) -> str:
    """``template`` executed with ``data`` as ``.`` (and ``$``)."""
    nodes, rest = _parse(_lex(template), 0, ())
    if rest != len(_lex(template)):
        raise ValueError("unbalanced {{ end }}")
    out: list[str] = []
    _exec(nodes, data, [{"$": data}], out)
    return "".join(out)


def _lex(template: str) -> list[tuple[str, str]]:
    """``[("text", s) | ("action", body)]`` with Go's whitespace trimming applied."""
    items: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if items and items[-1][0] == "trim":
            items.pop()
            text = text.lstrip(" \t\r\n")
        if text:
            items.append(("text", text))
        items.append(("action", m.group(2).strip()))
        if m.group(3):
            items.append(("trim", ""))
        pos = m.end()
    text = template[pos:]
    if items and items[-1][0] == "trim":
        items.pop()
        text = text.lstrip(" \t\r\n")
    if text:
        items.append(("text", text))
    return items


def _parse(items: list[tuple[str, str]], i: int, stop: tuple[str, ...]) -> tuple[list[Any], int]:
    """Nodes up to an action starting with one of ``stop`` (whose index is returned)."""
    nodes: list[Any] = []
    while i < len(items):
        kind, body = items[i]
        if kind == "text":
            nodes.append(("text", body))
            i += 1
            continue
        head = body.split(None, 1)[0] if body else ""
        if head in stop or (body.startswith("else") and "else" in stop):
            return nodes, i
        if head in ("if", "range"):
            node, i = _block(items, i, head, body[len(head) :].strip())
            nodes.append(node)
        elif head in ("end", "else"):
            raise ValueError(f"unexpected {{{{ {body} }}}}")
        else:
            nodes.append(("do", body))
            i += 1
    return nodes, i


def _block(items: list[tuple[str, str]], i: int, head: str, cond: str) -> tuple[Any, int]:
    branches: list[tuple[str, list[Any]]] = []
    otherwise: list[Any] = []
    while True:
        body, i = _parse(items, i + 1, ("end", "else"))
        if i >= len(items):
            raise ValueError(f"{{{{ {head} }}}} without {{{{ end }}}}")
        branches.append((cond, body))
        action = items[i][1]
        if action == "end":
            break
        if action == "else":
            otherwise, i = _parse(items, i + 1, ("end",))
            if i >= len(items):
                raise ValueError(f"{{{{ {head} }}}} without {{{{ end }}}}")
            break
        if not action.startswith("else if ") or head != "if":
            raise ValueError(f"unsupported {{{{ {action} }}}}")
        cond = action.removeprefix("else if ").strip()
    return (head, branches, otherwise), i + 1


def _exec(nodes: list[Any], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "do":
            _action(node[1], dot, scopes, out)
        elif node[0] == "if":
            for cond, body in node[1]:
                if _truth(_eval(cond, dot, scopes)):
                    _exec(body, dot, [*scopes, {}], out)
                    break
            else:
                _exec(node[2], dot, [*scopes, {}], out)
        else:
            _range(node, dot, scopes, out)


def _range(node: Any, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
    ((spec, body),) = node[1]
    names: list[str] = []
    if ":=" in spec:
        left, spec = spec.split(":=", 1)
        names = [n.strip() for n in left.split(",")]
    items = _eval(spec.strip(), dot, scopes) or []
    if not items:
        _exec(node[2], dot, [*scopes, {}], out)
    for index, item in enumerate(items):
        scope: dict[str, Any] = {}
        if len(names) == 1:
            scope[names[0]] = item
        elif len(names) == 2:
            scope[names[0]], scope[names[1]] = index, item
        _exec(body, item, [*scopes, scope], out)


def _action(body: str, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
    m = re.fullmatch(r"(\$\w+)\s*(:?=)\s*(.+)", body, re.S)
    if m is None:
        value = _eval(body, dot, scopes)
        out.append(
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        return
    name, op, expr = m.groups()
    value = _eval(expr, dot, scopes)
    if op == ":=":
        scopes[-1][name] = value
        return
    for scope in reversed(scopes):
        if name in scope:
            scope[name] = value
            return
    raise ValueError(f"undefined variable {name}")


def _eval(expr: str, dot: Any, scopes: list[dict[str, Any]]) -> Any:
    tokens = _TOKEN.findall(expr)
    value, pos = _call(tokens, 0, dot, scopes)
    if pos != len(tokens):
        raise ValueError(f"cannot parse {expr!r}")
    return value


def _call(tokens: list[str], pos: int, dot: Any, scopes: list[dict[str, Any]]) -> tuple[Any, int]:
    """A command: an operand, or a function and its operands (up to ``)`` or the end)."""
    if tokens[pos] in _FUNCS:
        name, pos, args = tokens[pos], pos + 1, []
        while pos < len(tokens) and tokens[pos] != ")":
            arg, pos = _operand(tokens, pos, dot, scopes)
            args.append(arg)
        func: Any = _FUNCS[name]
        return func(*args), pos
    return _operand(tokens, pos, dot, scopes)


def _operand(
    tokens: list[str], pos: int, dot: Any, scopes: list[dict[str, Any]]
) -> tuple[Any, int]:
    token = tokens[pos]
    if token == "(":
        value, pos = _call(tokens, pos + 1, dot, scopes)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ValueError("unbalanced parenthesis")
        return value, pos + 1
    if token.startswith('"'):
        return token[1:-1].encode().decode("unicode_escape"), pos + 1
    if token in ("true", "false"):
        return token == "true", pos + 1
    if re.fullmatch(r"-?\d+", token):
        return int(token), pos + 1
    if token.startswith("$"):
        name, _, path = token.partition(".")
        for scope in reversed(scopes):
            if name in scope:
                return _fields(scope[name], path), pos + 1
        raise ValueError(f"undefined variable {name}")
    if token.startswith("."):
        return _fields(dot, token[1:]), pos + 1
    raise ValueError(f"unsupported token {token!r}")


def _fields(value: Any, path: str) -> Any:
    for name in filter(None, path.split(".")):
        if not isinstance(value, dict) or name not in value:
            raise ValueError(f"no field {name}")
        value = value[name]
    return value


def _truth(value: Any) -> bool:
    return bool(value)


def _and(*args: Any) -> Any:
    for arg in args[:-1]:
        if not _truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args[:-1]:
        if _truth(arg):
            return arg
    return args[-1]


_FUNCS = {
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": lambda a, b: a != b,
    "and": _and,
    "or": _or,
    "not": lambda a: not _truth(a),
    "len": len,
    "slice": lambda a, i: a[i:],
}
