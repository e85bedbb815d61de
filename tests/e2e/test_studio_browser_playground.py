"""The playground in Chromium against a real gateway with no deployment (it answers
``no_traffic``): the error reads as an error (not raw JSON), is absent from the next
request's messages, Enter sends, Regenerate retries, New chat clears; with no endpoint at
all, Send says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chattune import Client
from tests.e2e.studio_browser import browser, chromium_or_skip, studio_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_a_gateway_error_is_an_error_and_never_sent_back(workspace: Path, tmp_path: Path) -> None:
    chromium_or_skip()
    client = Client.init(workspace)
    with studio_process(workspace, tmp_path) as (url, _), browser() as chromium:
        origin = url.split("/?")[0]
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.goto(origin + "/playground")
        page.click("#send")
        expect(page.locator("#chat-status")).to_contain_text("no endpoint")
        client.endpoints.create("pg-ep")
        try:
            errors_then_retry(page, origin)
        finally:
            client.endpoints.delete("pg-ep")


def errors_then_retry(page: Any, origin: str) -> None:
    sent: list[list[dict[str, str]]] = []
    page.on(
        "request",
        lambda r: (
            sent.append(json.loads(r.post_data)["messages"])
            if r.url.endswith("/api/playground/chat")
            else None
        ),
    )
    page.goto(origin + "/playground")
    page.select_option("select[name=endpoint]", "pg-ep")
    page.fill("textarea[name=message]", "first question")
    page.press("textarea[name=message]", "Enter")  # Enter sends
    first = page.locator("#answer-1")
    expect(first).to_have_attribute("data-done", "true")
    expect(first.locator(".error")).to_contain_text("no_traffic: endpoint pg-ep routes no traffic")
    assert "{" not in first.inner_text()  # readable, not raw JSON
    page.fill("textarea[name=message]", "line one")
    page.press("textarea[name=message]", "Shift+Enter")  # a new line, not a send
    page.type("textarea[name=message]", "line two")
    assert page.input_value("textarea[name=message]") == "line one\nline two"
    page.press("textarea[name=message]", "Enter")
    expect(page.locator("#answer-2")).to_have_attribute("data-done", "true")
    assert sent[0] == [{"role": "user", "content": "first question"}]
    assert sent[1] == [{"role": "user", "content": "line one\nline two"}]  # no error turn
    page.click("#regenerate")
    expect(page.locator("#answer-3")).to_have_attribute("data-done", "true")
    assert sent[2] == sent[1]
    page.click("#new-chat")
    expect(page.locator("#pane_a .chat .msg")).to_have_count(0)
