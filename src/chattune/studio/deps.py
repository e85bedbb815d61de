"""What every studio route needs: the SDK client of the app, plain JSON of SDK objects."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from fastapi import Request

from chattune.errors import ChattuneError, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from chattune.client import Client


def client_of(request: Request) -> Client:
    """The app's :class:`Client` (one per studio process)."""
    client: Client = request.app.state.client
    return client


def plain(obj: Any) -> Any:
    """An SDK object (dataclass, pydantic model, list of them) as JSON-ready data."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, list):
        return [plain(x) for x in obj]
    return obj


# The key path an SDK error message names: "spec:3: parameters.learning_rate: ..." or
# "data.train: file ... not found" → the form field to show it next to.
_FIELD = re.compile(r"(?:^|: |; )((?:data|parameters|settings)\.\w+|model|name|compute)(?=: )")


def field_of(message: str) -> str | None:
    """The job-spec field an SDK error message is about, if it names one."""
    found = _FIELD.search(message)
    return found.group(1) if found else None


def status_of(exc: ChattuneError) -> int:
    """The HTTP status of an SDK error (what the API answers with it)."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, ConflictError):
        return 409
    return 500
