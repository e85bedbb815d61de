"""The one text rule at every entrance: text is Unicode that encodes as UTF-8.

JSON's ``\\ud800`` escape and YAML's ``"\\ud800"`` both decode to a *lone surrogate*: a Python
string that no tokenizer, file or socket can encode. Whatever reads user text (HTTP bodies,
data rows, job specs) checks it here first and names where the bad character is, instead of
failing later in a tokenizer (``TypeError``) or a writer (``UnicodeEncodeError``).

>>> lone_surrogate("fine")
>>> lone_surrogate("ab\\ud800")
2
>>> invalid_text({"messages": [{"content": "x\\udc00"}]})
('messages[0].content', 1)
"""

from __future__ import annotations

from typing import Any

SURROGATE_HINT = "send text as valid UTF-8 (a lone surrogate such as \\ud800 is not a character)"


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in ``text``, or None when it is valid Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def invalid_text(value: Any, path: str = "") -> tuple[str, int] | None:
    """The path (``a.b[2]``) and index of the first lone surrogate in any string (value or
    key) of a JSON- or YAML-like value, or None. Iterative: no depth limit to hit."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            at = lone_surrogate(item)
            if at is not None:
                return where or "(top)", at
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                name = str(key)
                at = lone_surrogate(name)
                if at is not None:
                    return f"{where}.{name[:at]}" if where else name[:at] or "(key)", at
                stack.append((child, f"{where}.{name}" if where else name))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def surrogate_message(where: str, at: int) -> str:
    """``where: text holds a lone surrogate at character N (not valid Unicode)``."""
    return f"{where}: text holds a lone surrogate at character {at} (not valid Unicode)"


def json_depth(value: Any, limit: int = 1 << 30) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), without recursion;
    counting stops past ``limit`` (the caller refuses anything deeper anyway).

    >>> json_depth({"a": [1, [2]]})
    3
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= limit:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
    return deepest
