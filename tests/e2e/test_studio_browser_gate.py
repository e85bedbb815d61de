"""The studio's gate in Chromium (fast: the default suite runs it when Debian's chromium
and Playwright are installed, and skips it with the reason otherwise). A page on another
local port of the same machine (same site: the SameSite=Strict cookie goes along) tries to
cancel, resume, create and delete: each answers 403 and nothing changes; the token URL
fails the second time; the data routes answer the same for outside and missing paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chattune import Client
from tests.e2e.studio_browser import browser, chromium_or_skip, page_server, studio_process
from tests.studio_workspace import populate

pytestmark = [pytest.mark.browser]

ATTACKS = [
    ("POST", "/api/jobs/job-000/cancel", ""),
    ("POST", "/api/jobs/job-001/resume", ""),
    ("POST", "/api/jobs", json.dumps({"model": "tiny-random-phi3", "data": {"train": "x"}})),
    ("POST", "/api/endpoints", json.dumps({"name": "evil"})),
    ("DELETE", "/api/endpoints/ep", ""),
    ("DELETE", "/api/models/tiny-chat/1", ""),
    ("DELETE", "/api/jobs/job-002", ""),
]


def attack_page(studio: str) -> str:
    """Simple (no preflight) no-cors requests with the cookie, and a classic form post."""
    calls = ",".join(json.dumps([m, studio + p, b]) for m, p, b in ATTACKS)
    return f"""<!doctype html><html lang=en><title>evil</title><body>
<form id=f method=post action="{studio}/api/endpoints/ep/keys" target=sink>
<input name=key_type value=primary></form><iframe name=sink title=sink></iframe>
<script>
const calls = [{calls}];
window.attacked = Promise.all(calls.map(([method, url, body]) =>
  fetch(url, {{method, body: body || undefined, credentials: "include",
    mode: method === "POST" ? "no-cors" : "cors",
    headers: {{"Content-Type": "text/plain"}}}}).catch(() => null)));
</script></body></html>"""


def test_another_local_page_cannot_act_and_the_url_works_once(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    chromium_or_skip()
    client = Client.init(workspace)
    project = tmp_path / "project"
    project.mkdir()
    populate(client, project, tiny_model_dir)
    before = snapshot(client)
    evil = tmp_path / "evil"
    evil.mkdir()
    with studio_process(workspace, project) as (url, _), browser() as chromium:
        origin = url.split("/?")[0]
        (evil / "index.html").write_text(attack_page(origin))
        page = chromium.new_page()
        assert page.goto(url).status == 200 and "token" not in page.url
        with page_server(evil) as other:
            answers = attack(page, other + "/index.html", origin)
        posts = {k: v for k, v in answers.items() if k.startswith("POST")}
        assert set(posts.values()) == {403} and len(posts) == 5, answers  # 4 fetch + form
        # DELETE needs a CORS preflight, which the studio does not grant: never sent.
        assert not any(k.startswith("DELETE") for k in answers), answers
        assert snapshot(client) == before
        again = chromium.new_context().new_page()
        assert again.goto(url).status == 401  # the login URL works once
        assert "used already" in again.content()
        same_answers(page, origin)


def attack(page: Any, evil_url: str, origin: str) -> dict[str, int]:
    """Open the evil page in the logged-in browser; the studio's answer to each request."""
    answers: dict[str, int] = {}

    def seen(response: Any) -> None:
        request = response.request
        if request.url.startswith(origin):
            answers[f"{request.method} {request.url}"] = response.status

    page.on("response", seen)
    page.goto(evil_url)
    page.evaluate("window.attacked")
    page.evaluate("document.getElementById('f').submit()")
    page.wait_for_timeout(1500)
    page.remove_listener("response", seen)
    return answers


def snapshot(client: Client) -> dict[str, Any]:
    return {
        "jobs": {j.name: j.status for j in client.jobs.list()},
        "endpoints": [e.name for e in client.endpoints.list()],
        "keys": client.endpoints.get_keys("ep"),
        "models": [m.ref for m in client.models.list()],
    }


def same_answers(page: Any, origin: str) -> None:
    """From the studio's own page: outside and missing paths get one answer."""
    page.goto(origin + "/data")
    script = """async (paths) => Promise.all(paths.map(async (path) => {
      const r = await studio.send("POST", "/api/data/show", {path});
      return [r.status, (await r.json()).error.replace(`file ${path}:`, "file PATH:")];
    }))"""
    paths = ["/etc/passwd", "../x.jsonl", "/etc/nope.jsonl", "data/nope.jsonl", "../project"]
    found = page.evaluate(script, paths)
    assert {tuple(f) for f in found} == {tuple(found[0])} and found[0][0] == 404, found
