"""The gateway's OpenAPI description: the proxied routes with their real request schemas.

The gateway forwards bodies unparsed (the worker checks them), so FastAPI cannot infer the
schemas; they come from :mod:`chattune.serving.protocol`, the models the workers parse with.
``/openapi.json`` and ``/docs`` are private routes like the rest (the key guards them).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from chattune.serving import protocol

REF = "#/components/schemas/{model}"
REQUESTS: dict[str, type[BaseModel]] = {
    "/score": protocol.ScoreRequest,
    "/v1/chat/completions": protocol.ChatCompletionRequest,
}
ERRORS = {
    "400": "Bad JSON, or a parameter the engine cannot honour (the message names it)",
    "401": "Missing or wrong key",
    "404": "Unknown deployment (header) or model (`model_not_found`)",
    "408": "The deployment did not answer within its request timeout",
    "413": "Body over the size limit",
    "422": "The body's shape or conversation is wrong (/score)",
    "429": "Every concurrency slot of the deployment is taken",
    "503": "No ready instance",
}


def _error(description: str) -> dict[str, Any]:
    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    }
    return {"description": description, "content": {"application/json": {"schema": error}}}


def operation(path: str) -> dict[str, Any]:
    """``openapi_extra`` of a proxied route: its request body schema and error answers."""
    extra: dict[str, Any] = {"responses": {code: _error(d) for code, d in ERRORS.items()}}
    model = REQUESTS.get(path)
    if model is not None:
        schema = {"$ref": REF.format(model=model.__name__)}
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    return extra


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the request models' schemas as components."""
    build = app.openapi

    def described() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in REQUESTS.values():
            schema = model.model_json_schema(ref_template=REF)
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        document["components"]["securitySchemes"] = {
            "endpointKey": {"type": "http", "scheme": "bearer"}
        }
        document["security"] = [{"endpointKey": []}]
        app.openapi_schema = document
        return document

    app.openapi = described  # type: ignore[method-assign]
