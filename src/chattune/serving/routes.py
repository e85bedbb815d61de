"""The model routes every endpoint answers, declared once for the worker that serves them and
the gateway that forwards them: method, summary, request model, answer models and errors.

Bodies are parsed by :func:`chattune.serving.protocol.parse_request` (depth limit, text
check, strict types, one-line errors), not by FastAPI, so each route's OpenAPI request body
is declared from its model here (:func:`openapi_kwargs`) and :func:`parsed` is the FastAPI
dependency that parses it.

>>> sorted(ROUTES)
['/score', '/v1/chat/completions', '/v1/models']
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from chattune.serving import protocol, responses

M = TypeVar("M", bound=BaseModel)

ERRORS = {
    400: "Bad JSON, or a parameter no engine honours (the message names it)",
    401: "Missing or wrong key",
    404: "Unknown deployment (header) or model (`model_not_found`)",
    408: "The deployment did not answer within its request timeout",
    413: "Body over the size limit",
    422: "The body's shape or conversation is wrong (/score)",
    429: "Every concurrency slot of the deployment is taken",
    503: "No ready instance",
}


@dataclass(frozen=True)
class ModelRoute:
    """One model route: what it takes and answers."""

    method: str
    summary: str
    answer: type[BaseModel]
    request: type[BaseModel] | None = None
    invalid_status: int = 422
    """Status of a well-formed body with a wrong shape (OpenAI's routes answer 400)."""
    events: type[BaseModel] | None = None
    """The model of each server-sent event, when the route can stream."""


ROUTES = {
    "/score": ModelRoute(
        "POST",
        "Answer conversations (Azure ML's request format)",
        responses.ScoreResponse,
        protocol.ScoreRequest,
    ),
    "/v1/chat/completions": ModelRoute(
        "POST",
        "OpenAI chat completions (stream: true answers server-sent events)",
        responses.ChatCompletion,
        protocol.ChatCompletionRequest,
        invalid_status=400,
        events=responses.ChatCompletionChunk,
    ),
    "/v1/models": ModelRoute("GET", "Every model the endpoint serves", responses.ModelList),
}


def openapi_kwargs(path: str) -> dict[str, Any]:
    """``add_api_route`` arguments that describe ``path``'s request body, answer (and event
    stream) and error answers from the models."""
    route = ROUTES[path]
    ok: dict[str, Any] = {"model": route.answer, "description": "The answer"}
    if route.events is not None:
        event = {"schema": responses.inline_schema(route.events)}
        ok["content"] = {"text/event-stream": event}
        ok["description"] = (
            "The answer; with stream: true, server-sent events `data: <chunk>` then `data: [DONE]`"
        )
    answers: dict[int | str, dict[str, Any]] = {200: ok}
    answers |= {
        code: {"model": responses.ErrorBody, "description": d} for code, d in ERRORS.items()
    }
    kwargs: dict[str, Any] = {
        "methods": [route.method],
        "summary": route.summary,
        "responses": answers,
    }
    if route.request is not None:
        schema = responses.inline_schema(route.request)
        body = {"required": True, "content": {"application/json": {"schema": schema}}}
        kwargs["openapi_extra"] = {"requestBody": body}
    return kwargs


def parsed(model: type[M], invalid_status: int = 422) -> Callable[[Request], Awaitable[M]]:
    """A FastAPI dependency: the request body parsed as ``model`` by
    :func:`~chattune.serving.protocol.parse_request` (its errors are the route's answer)."""

    async def parse(request: Request) -> M:
        return protocol.parse_request(model, await request.body(), invalid_status)

    return parse


ScoreBody = Annotated[protocol.ScoreRequest, Depends(parsed(protocol.ScoreRequest))]
"""A route parameter: the ``/score`` body, parsed."""
ChatBody = Annotated[
    protocol.ChatCompletionRequest,
    Depends(parsed(protocol.ChatCompletionRequest, ROUTES["/v1/chat/completions"].invalid_status)),
]
"""A route parameter: the ``/v1/chat/completions`` body, parsed."""
