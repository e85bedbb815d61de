"""The playground's routes: the chat call proxied to the endpoint's gateway with its key
(server-side: the key never reaches the page), streamed back as the gateway's SSE, and the
equivalent ``curl`` and ``openai`` Python for the same request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from chattune.errors import ConflictError, ValidationError
from chattune.studio.deps import client_of

router = APIRouter(prefix="/api/playground")
DEPLOYMENT_HEADER = "azureml-model-deployment"  # the gateway's contract (DESIGN.md §5)


class ChatRequest(BaseModel):
    endpoint: str
    deployment: str | None = None
    system: str = ""
    messages: list[dict[str, str]] = Field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


def chat_body(chat: ChatRequest) -> dict[str, Any]:
    """The OpenAI chat-completions body of a playground request (always streaming)."""
    system = [{"role": "system", "content": chat.system}] if chat.system.strip() else []
    body: dict[str, Any] = {"messages": system + chat.messages, "stream": True}
    for key in ("temperature", "top_p", "max_tokens"):
        value = getattr(chat, key)
        if value is not None:
            body[key] = value
    return body


def snippets(base_url: str, chat: ChatRequest) -> dict[str, str]:
    """``curl`` and ``openai`` Python that send the same request (key from the env)."""
    body = chat_body(chat)
    header = f' \\\n  -H "{DEPLOYMENT_HEADER}: {chat.deployment}"' if chat.deployment else ""
    curl = (
        f"curl -N {base_url}/v1/chat/completions \\\n"
        '  -H "Authorization: Bearer $CHATTUNE_KEY" \\\n'
        f'  -H "Content-Type: application/json"{header} \\\n'
        f"  -d '{json.dumps(body)}'"
    )
    extra = {k: v for k, v in body.items() if k not in ("messages", "stream")}
    args = "".join(f", {k}={v!r}" for k, v in extra.items())
    headers = (
        f", extra_headers={{{DEPLOYMENT_HEADER!r}: {chat.deployment!r}}}" if chat.deployment else ""
    )
    python = (
        "import os\nfrom openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}/v1", api_key=os.environ["CHATTUNE_KEY"])\n'
        "stream = client.chat.completions.create(\n"
        f'    model="{chat.endpoint}",\n'
        f"    messages={body['messages']!r},\n"
        f"    stream=True{args}{headers},\n)\n"
        "for chunk in stream:\n"
        '    print(chunk.choices[0].delta.content or "", end="", flush=True)\n'
    )
    return {"curl": curl, "python": python}


def _target(request: Request, chat: ChatRequest) -> tuple[str, str]:
    if not chat.endpoint.strip():
        raise ValidationError(
            "no endpoint chosen: the playground chats with an endpoint's deployment",
            "create an endpoint and deploy a model on the Endpoints page, then pick it here",
        )
    endpoints = client_of(request).endpoints
    info = endpoints.get(chat.endpoint)
    if info.status != "running" or not info.base_url:
        raise ConflictError(
            f"endpoint {chat.endpoint} is {info.status}, not running",
            info.error or f"see `chattune endpoints show {chat.endpoint}`",
        )
    return info.base_url, endpoints.get_keys(chat.endpoint)["primary_key"]


@router.post("/snippets")
def code(request: Request, chat: ChatRequest) -> dict[str, str]:
    info = client_of(request).endpoints.get(chat.endpoint)
    return snippets(info.base_url or "http://HOST:PORT", chat)


@router.post("/chat")
def chat(request: Request, chat: ChatRequest) -> StreamingResponse:
    """The gateway's answer as it comes: SSE ``data: {chunk}`` lines, then ``[DONE]``."""
    base_url, key = _target(request, chat)
    headers = {"Authorization": f"Bearer {key}"}
    if chat.deployment:
        headers[DEPLOYMENT_HEADER] = chat.deployment

    body = {**chat_body(chat), "stream_options": {"include_usage": True}}
    url = f"{base_url}/v1/chat/completions"

    async def relay() -> AsyncIterator[bytes]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0)) as http:
            try:
                async with http.stream("POST", url, json=body, headers=headers) as answer:
                    if answer.status_code != 200:
                        yield _event(gateway_error(answer.status_code, await answer.aread()))
                        return
                    async for chunk in answer.aiter_raw():
                        yield chunk
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
                message = f"endpoint {chat.endpoint} did not answer: {why}"
                yield _event({"error": {"code": "unreachable", "message": message}})

    return StreamingResponse(relay(), media_type="text/event-stream")


def gateway_error(status: int, raw: bytes) -> dict[str, Any]:
    """A gateway's error answer as ``{"error": {code, message, status}}`` (its own
    ``{"error": {code, message}}`` shape when it is JSON, else the text's first line)."""
    text = raw.decode(errors="replace")
    try:
        found = json.loads(text).get("error")
    except (ValueError, AttributeError):
        found = None
    if isinstance(found, dict) and found.get("message"):
        code, message = str(found.get("code") or f"http_{status}"), str(found["message"])
    else:
        lines = text.strip().splitlines()
        code, message = f"http_{status}", (lines[0] if lines else "")[:300] or "no message"
    return {"error": {"code": code, "message": message, "status": status}}


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\ndata: [DONE]\n\n".encode()
