"""Calling an endpoint from the SDK: request files in, the answer's JSON (or a typed error) out.

>>> answer = post_request("my-ep", "http://127.0.0.1:41234", key, {"messages": [...]})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from chattune.errors import ChattuneError, NotFoundError, RuntimeFailure, ValidationError
from chattune.serving.http import DEPLOYMENT_HEADER


def read_request(path: Path) -> dict[str, Any]:
    """The JSON object in request file ``path``."""
    if not path.is_file():
        raise NotFoundError(
            f"request file {path} not found", "pass a JSON file, e.g. examples/sample_score.json"
        )
    try:
        body = json.loads(path.read_text())
    except ValueError as exc:
        raise ValidationError(
            f"request file {path} is not valid JSON: {exc}", "fix the JSON syntax"
        ) from None
    if not isinstance(body, dict):
        raise ValidationError(
            f"request file {path} must hold a JSON object", 'start it with {"input_data": ...}'
        )
    return body


def post_request(
    endpoint: str,
    base_url: str,
    key: str,
    body: dict[str, Any],
    deployment: str | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """POST ``body`` to ``/v1/chat/completions`` if it has ``messages``, else to ``/score``."""
    path = "/v1/chat/completions" if "messages" in body else "/score"
    headers = {"Authorization": f"Bearer {key}"}
    if deployment:
        headers[DEPLOYMENT_HEADER] = deployment
    try:
        answer = httpx.post(base_url + path, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RuntimeFailure(
            f"endpoint {endpoint} did not answer: {exc}",
            f"see `chattune endpoints logs {endpoint}`",
        ) from None
    if answer.status_code != 200:
        raise answer_error(endpoint, answer)
    return answer.json()


def answer_error(endpoint: str, answer: httpx.Response) -> ChattuneError:
    """The typed error for a non-200 answer, quoting the endpoint's error code and message."""
    try:
        error = answer.json()["error"]
        text = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = answer.text[:300]
    message = f"endpoint {endpoint} answered {answer.status_code} {text}"
    if answer.status_code in (400, 413, 422):
        return ValidationError(message, "fix the request body")
    if answer.status_code == 404:
        return NotFoundError(message, f"see `chattune endpoints show {endpoint}`")
    return RuntimeFailure(message, f"see `chattune endpoints logs {endpoint}`")
