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

    url, client, _ = studio_url
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
        endpoint = deploy(page, origin, shots, version)
        chat(page, origin, shots, endpoint)
        browser.close()
    assert client.jobs.get(name).status == "completed"
    assert client.endpoints.get("studio-ep").traffic == {"blue": 100}
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


def copy_for_readme(shots: Path) -> None:
    target = os.environ.get("CHATTUNE_STUDIO_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "job.png", Path(target) / "studio-job.png")
        shutil.copy(shots / "playground.png", Path(target) / "studio-playground.png")
