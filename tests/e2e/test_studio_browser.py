"""The studio in Debian's headless Chromium, driven by Playwright, through the whole flow:
open it with its token, submit a tiny job from the form (after seeing the CLI's field error
next to the field), watch its loss curve get points, read its evaluation report, register
it, open the lineage, create an endpoint and a deployment, set traffic, and chat in the
playground with a streamed answer. Each page is screenshotted into the test's folder
(``CHATTUNE_STUDIO_SHOTS`` copies the job page and the playground for the README)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chattune import Client

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def expect(locator: Any) -> Any:
    """Playwright's waiting assertions (imported here: `make test` has no Playwright)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def studio_url(workspace: Path, tmp_path: Path) -> Iterator[tuple[str, Client, Path]]:
    """``chattune studio`` in its own process, run from a project folder with data."""
    project = tmp_path / "project"
    project.mkdir()
    client = Client.init(workspace)
    client.data.download("ultrachat-sample", split_pc=20, out=project / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chattune", "studio", "--no-open", "--port", "0"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CHATTUNE_WORKSPACE": str(workspace)},
    )
    url = ""
    assert proc.stdout is not None
    deadline = time.time() + 60
    while not url and time.time() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"(http://\S+\?token=\S+)", line)
        url = found.group(1) if found else ""
    assert url, "the studio printed no URL"
    try:
        yield url, client, project
    finally:
        for endpoint in client.endpoints.list():
            client.endpoints.delete(endpoint.name)
        proc.terminate()
        proc.wait(timeout=30)


def test_the_whole_flow_in_a_browser(studio_url: tuple[str, Client, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, client, project = studio_url
    origin = url.split("/?")[0]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make browser`"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(30_000)

        assert page.goto(origin + "/").status == 401  # no token, no studio
        page.goto(url)
        assert "token" not in page.url  # the token left the address bar for a cookie
        expect(page.locator("h1")).to_have_text("Jobs")
        page.screenshot(path=shots / "jobs-empty.png", full_page=True)

        data_page(page, origin, shots)
        name = submit_job(page, origin, shots)
        watch_job(page, shots, name)
        version = register(page, shots, name)
        page.goto(origin + "/")
        expect(page.locator("#jobs")).to_contain_text(name)
        page.screenshot(path=shots / "jobs.png", full_page=True)
        second = compare(page, origin, shots, client, name, project)
        endpoint = deploy(page, origin, shots, version)
        assert client.endpoints.get("studio-ep").traffic == {"blue": 100}
        chat(page, origin, shots, endpoint)
        side_by_side(page, browser, origin, shots, client, second)
        delete_from_the_ui(page, origin, shots, client)
        browser.close()
    assert client.jobs.get(name).status == "completed"
    copy_for_readme(shots)


def data_page(page, origin: str, shots: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(origin + "/data")
    page.select_option("select[name=path]", "data/train_sft.jsonl")
    page.click("#validate")
    expect(page.locator("#validate-summary")).to_contain_text("valid")
    page.click("#stats")
    histogram = page.locator("#histogram svg path")
    expect(histogram).to_have_count(2, timeout=90_000)  # lengths + the limit line
    expect(page.locator("#conversations .trained").first).to_be_visible()
    page.screenshot(path=shots / "data.png", full_page=True)


def submit_job(page, origin: str, shots: Path) -> str:  # type: ignore[no-untyped-def]
    page.goto(origin + "/jobs-new")
    expect(page.locator("#yaml")).to_contain_text("model:")  # the first preview came back
    for error in page.locator(".err").all():
        expect(error).to_have_text("")  # no error before any input
    recommended = page.evaluate("studio.api('GET', '/api/jobs-form/parameters')")["recommended"]
    assert page.input_value("select[name=model]") == recommended  # what fits this machine
    expect(page.locator("#compute")).to_contain_text("fits this machine")
    page.fill("input[name=name]", "studio-tiny")
    page.select_option("select[name=model]", "tiny-random-phi3")
    page.fill("input[name='data.train']", "data/train_sft.jsonl")
    page.fill("input[name='data.test']", "data/test_sft.jsonl")
    page.fill("input[name='data.test_gen']", "data/test_gen.jsonl")
    for key, value in {
        "max_steps": "12",
        "max_seq_length": "128",
        "logging_steps": "1",
        "eval_steps": "4",
        "generation_eval_rows": "3",
        "generation_max_new_tokens": "8",
        "learning_rate": "-1",
    }.items():
        page.fill(f"input[name='parameters.{key}']", value)
    page.select_option("select[name='parameters.evaluation_strategy']", "steps")
    page.click("#submit")
    error = page.locator("[id='err-parameters.learning_rate']")
    expect(error).to_contain_text("learning_rate")  # the SDK's message, next to the field
    expect(page.locator("#yaml")).to_contain_text("max_steps: 12")
    page.screenshot(path=shots / "new-job-error.png", full_page=True)
    page.fill("input[name='parameters.learning_rate']", "0.001")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/jobs/studio-tiny$"))
    return "studio-tiny"


def watch_job(page, shots: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    points = page.locator("#curve circle.point")
    seen_running = 0
    deadline = time.time() + 600
    while time.time() < deadline:
        status = page.locator("#job-status-text").get_attribute("data-status") or ""
        if points.count() and "completed" not in status:
            seen_running = max(seen_running, points.count())
        if "completed" in status or "failed" in status:
            break
        time.sleep(0.5)
    assert page.locator("#job-status-text").get_attribute("data-status") == "completed"
    assert seen_running > 0, "the curve got no point while the job ran"
    expect(page.locator("#report table")).to_be_visible(timeout=30_000)
    expect(page.locator("#report")).to_contain_text("rouge_l")
    assert points.count() >= seen_running
    page.screenshot(path=shots / "job-full.png", full_page=True)
    page.screenshot(path=shots / "job.png")


def register(page, shots: Path, name: str) -> str:  # type: ignore[no-untyped-def]
    page.fill("#register-name", "studio-tiny")
    page.click("#register")
    page.click("#registered-link")
    expect(page.locator("#lineage")).to_contain_text(name)
    expect(page.locator("#lineage")).to_contain_text("tiny-random-phi3")
    page.screenshot(path=shots / "lineage.png", full_page=True)
    return "studio-tiny:1"


def deploy(page, origin: str, shots: Path, version: str) -> str:  # type: ignore[no-untyped-def]
    page.goto(origin + "/endpoints")
    page.fill("#endpoint-form input[name=name]", "studio-ep")
    page.click("#endpoint-form button")
    page.wait_for_url(re.compile(r"/endpoints/studio-ep$"), timeout=120_000)
    page.fill("#deployment-form input[name=name]", "blue")
    page.fill("#deployment-form input[name=model]", version)
    page.click("#deployment-form button")
    expect(page.locator("#deployments")).to_contain_text("ready", timeout=180_000)
    page.fill("input.weight[data-name=blue]", "90")
    page.click("#save-traffic")
    expect(page.locator("#traffic-result")).to_contain_text("not 100")  # checked on the page
    page.fill("input.weight[data-name=blue]", "100")
    page.click("#save-traffic")
    expect(page.locator("#traffic-saved")).to_contain_text("saved: blue=100")
    expect(page.locator("#keys")).to_contain_text("••••")
    page.screenshot(path=shots / "endpoint.png", full_page=True)
    page.goto(origin + "/models/studio-tiny/1")
    expect(page.locator("#lineage")).to_contain_text("studio-ep/blue (100%)")
    return "studio-ep"


def chat(page, origin: str, shots: Path, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(origin + "/playground")
    page.select_option("select[name=endpoint]", endpoint)
    page.select_option("select[name=deployment]", "blue")
    page.fill("textarea[name=system]", "You are brief.")
    page.fill("input[name=max_tokens]", "24")
    page.fill("textarea[name=message]", "Name three colours.")
    expect(page.locator("#curl")).to_contain_text("/v1/chat/completions")
    page.click("#send")
    answer = page.locator("#answer-1")
    expect(answer).to_have_attribute("data-done", "true", timeout=120_000)
    assert int(answer.get_attribute("data-chunks") or 0) >= 2  # token by token, not one piece
    expect(page.locator("#python")).to_contain_text("stream=True")
    assert "Bearer $CHATTUNE_KEY" in page.locator("#curl").inner_text()
    page.screenshot(path=shots / "playground.png", full_page=True)


def compare(page, origin, shots, client, first, project):  # type: ignore[no-untyped-def]
    """A second, shorter job (made with the SDK), then both overlaid on the compare page."""
    spec = {
        "name": "studio-second",
        "model": "tiny-random-phi3",
        "data": {"train": str(project / "data/train_sft.jsonl")},
        "parameters": {"max_steps": 6, "max_seq_length": 128, "logging_steps": 1,
                       "learning_rate": 0.002, "generation_eval_rows": 0},
    }  # fmt: skip
    client.jobs.create(spec)
    page.goto(origin + "/")
    expect(page.locator("#jobs")).to_contain_text("studio-second")  # the list updates itself
    assert client.jobs.wait("studio-second", timeout=600).status == "completed"
    page.check(f"input.pick[value={first}]")
    page.check("input.pick[value=studio-second]")
    page.click("#compare")
    loss = page.locator(".compare-curve[data-metric=loss]")
    expect(loss.locator("text.legend")).to_have_count(2)  # both jobs overlaid
    loss.locator("svg").hover()
    expect(loss.locator(".tip")).to_contain_text("step")
    expect(page.locator("#param-table")).to_contain_text("learning_rate")
    page.screenshot(path=shots / "compare.png", full_page=True)
    client.models.register("studio-second", "studio-second")
    return "studio-second:1"


def side_by_side(page, browser, origin, shots, client, second):  # type: ignore[no-untyped-def]
    """The same messages to two deployments, both streaming; then one of them fails: its
    error shows as an error and is absent from the next request's messages."""
    client.endpoints.create_deployment("studio-ep", "green", second)
    sent: list[dict[str, Any]] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/chat") else None)
    page.goto(origin + "/playground")
    page.check("#compare")
    page.select_option("select[name=endpoint]", "studio-ep")
    page.select_option("select[name=deployment]", "blue")
    page.select_option("select[name=endpoint_b]", "studio-ep")
    page.select_option("select[name=deployment_b]", "green")
    page.fill("input[name=max_tokens]", "12")
    page.fill("textarea[name=message]", "Say hi.")
    page.press("textarea[name=message]", "Enter")
    for answer in ("#answer-1", "#answer-b-1"):
        expect(page.locator(answer)).to_have_attribute("data-done", "true", timeout=120_000)
        assert int(page.locator(answer).get_attribute("data-chunks") or 0) >= 2
    expect(page.locator("#pane_b .stats")).to_contain_text("tokens/s")
    page.screenshot(path=shots / "side-by-side.png", full_page=True)
    other = browser.new_page()  # the deployment goes away under the open playground
    other.on("dialog", lambda d: d.accept())
    other.goto(origin + "/endpoints/studio-ep")
    other.click("button[aria-label='delete deployment green']")
    expect(other.locator("#deployments")).not_to_contain_text("green", timeout=60_000)
    other.close()
    page.fill("textarea[name=message]", "Again.")
    page.press("textarea[name=message]", "Enter")
    failed = page.locator("#answer-b-2")
    expect(failed).to_have_attribute("data-error", "true", timeout=60_000)
    expect(failed).to_contain_text("deployment_not_found")
    page.fill("textarea[name=message]", "Third.")
    page.press("textarea[name=message]", "Enter")
    expect(page.locator("#answer-b-3")).to_have_attribute("data-done", "true")
    last_b = [b for b in sent if b.get("deployment") == "green"][-1]["messages"]
    assert [m["content"] for m in last_b if m["role"] == "user"] == ["Say hi.", "Third."]
    assert not any("deployment_not_found" in m["content"] for m in last_b)


def delete_from_the_ui(page, origin, shots, client) -> None:  # type: ignore[no-untyped-def]
    """Delete deployment (refused while it has traffic, as in the CLI), endpoint, version."""
    page.on("dialog", lambda d: d.accept())
    page.goto(origin + "/endpoints/studio-ep")
    page.click("button[aria-label='delete deployment blue']")
    expect(page.locator("#page-result")).to_contain_text("still gets traffic")
    page.click("button[aria-label='delete endpoint studio-ep']")
    page.wait_for_url(re.compile(r"/endpoints$"), timeout=60_000)
    assert client.endpoints.list() == []
    page.goto(origin + "/models")
    page.click("button[aria-label='delete studio-tiny:1']")
    expect(page.locator("#registry")).not_to_contain_text("studio-tiny:1")
    page.click("button[aria-label='archive studio-second:1']")
    expect(page.locator("#registry")).to_contain_text("archived")
    page.screenshot(path=shots / "models-after-delete.png", full_page=True)


def copy_for_readme(shots: Path) -> None:
    target = os.environ.get("CHATTUNE_STUDIO_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "job.png", Path(target) / "studio-job.png")
        shutil.copy(shots / "playground.png", Path(target) / "studio-playground.png")
