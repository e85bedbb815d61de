"""axe-core (vendored under tests/e2e/vendor) on every studio page in Chromium, at 1280 px
and 390 px wide, in the light and the dark theme: no serious or critical violation, no
sideways scrolling at 390 px; a screenshot of each page and width lands in the test's
folder (``CHATTUNE_STUDIO_SHOTS`` copies them out)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from chattune import Client
from tests.e2e.studio_browser import browser, chromium_or_skip, studio_process
from tests.studio_workspace import populate

pytestmark = [pytest.mark.slow, pytest.mark.browser]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PAGES = {
    "jobs": "/",
    "job": "/jobs/job-000",
    "new-job": "/jobs-new",
    "compare": "/compare?jobs=job-000,job-001",
    "data": "/data",
    "models": "/models",
    "lineage": "/models/tiny-chat/1",
    "endpoints": "/endpoints",
    "endpoint": "/endpoints/ep",
    "playground": "/playground",
}


def serious(page: Any) -> list[str]:
    """The serious and critical axe violations of the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:4]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_passes_axe_at_both_widths_and_themes(
    workspace: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    chromium_or_skip()
    client = Client.init(workspace)
    project = tmp_path / "project"
    project.mkdir()
    populate(client, project, tiny_model_dir)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems: dict[str, list[str]] = {}
    with studio_process(workspace, project) as (url, _), browser() as chromium:
        origin = url.split("/?")[0]
        cookies: list[Any] = []
        for scheme in ("light", "dark"):
            context = chromium.new_context(color_scheme=scheme)
            context.add_cookies(cookies)  # the session of the first (the URL works once)
            page = context.new_page()
            if not cookies:
                page.goto(url)
                cookies = context.cookies()
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                for name, path in PAGES.items():
                    answer = page.goto(origin + path)
                    assert answer.status == 200, (path, answer.status)
                    page.wait_for_load_state("networkidle")
                    key = f"{name}-{width}-{scheme}"
                    problems[key] = serious(page)
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    if wide > width + 1:
                        problems[key].append(f"scrolls sideways at {width} px ({wide} px)")
                    page.screenshot(path=shots / f"{key}.png", full_page=True)
            context.close()
    target = os.environ.get("CHATTUNE_STUDIO_SHOTS")
    if target:
        shutil.copytree(shots, target, dirs_exist_ok=True)
    bad = {k: v for k, v in problems.items() if v}
    assert not bad, json.dumps(bad, indent=1)
