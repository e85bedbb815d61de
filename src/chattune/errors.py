"""Errors a user can act on.

Every error carries a one-line message (what was wrong, where) and a fix hint (what to do).
The CLI prints ``error: <message> (fix: <hint>)`` and exits non-zero, never a traceback.
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with line breaks shown as ``\\n``: a name a user typed with a newline in it
    must not split an error over two lines (nor forge a second one in a log).

    >>> one_line("deployment 'a\\nb' not found")
    "deployment 'a\\\\nb' not found"
    """
    if "\n" not in text and "\r" not in text:
        return text
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ChattuneError(Exception):
    """Base error: ``message`` says what and where, ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        message, hint = one_line(message), one_line(hint)
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class NotFoundError(ChattuneError):
    """A named thing (model, dataset, job, endpoint, deployment, file) does not exist."""

    exit_code = 2


class ValidationError(ChattuneError):
    """User input (spec, data file, request, option) is malformed."""

    exit_code = 3


class ConflictError(ChattuneError):
    """The thing exists already or is in a state that forbids the action."""

    exit_code = 4


class AssetError(ChattuneError):
    """An offline asset could not be fetched or converted."""

    exit_code = 5


class RuntimeFailure(ChattuneError):
    """A job, stage or server process failed while running."""

    exit_code = 6
