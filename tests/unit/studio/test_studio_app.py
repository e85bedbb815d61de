"""The studio's pages and API over a real workspace (no browser): every page renders, every
route refuses a request without the token, the job form answers with the CLI's error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount
from tests.studio_workspace import populate
from typer.testing import CliRunner

from chattune.client import Client
from chattune.studio import create_studio_app

TOKEN = "test-token-123"
BASE = "http://127.0.0.1:8765"
PAGES = [
    "/",
    "/jobs/job-000",
    "/jobs-new",
    "/data",
    "/models",
    "/models/tiny-chat/1",
    "/endpoints",
    "/endpoints/ep",
    "/playground",
    "/compare?jobs=job-000,job-001",
]


@pytest.fixture
def studio(workspace: Path, tmp_path: Path, tiny_model_dir: Path) -> Iterator[TestClient]:
    client = Client.init(workspace)
    populate(client, tmp_path, tiny_model_dir)
    app = create_studio_app(client, TOKEN, root=tmp_path)
    with TestClient(app, base_url=BASE) as http:
        yield http


def authorized(http: TestClient) -> TestClient:
    http.headers["Authorization"] = f"Bearer {TOKEN}"
    return http


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_the_workspace(studio: TestClient, path: str) -> None:
    answer = authorized(studio).get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "<nav>" in page and "chattune studio" in page
    expected = {
        "/": "job-002",
        "/jobs/job-000": "finetune",
        "/models": "tiny-chat:2",
        "/models/tiny-chat/1": "ab" * 6,
        "/endpoints": "ep",
        "/data": "data/train.jsonl",
        "/jobs-new": "data/train.jsonl",
    }
    assert expected.get(path, "") in page
    for key in studio.get("/api/endpoints/ep/keys").json().values():
        assert key not in page  # keys only on demand, never in a page
    for script in re.findall(r'src="(/static/[^"]+)"', page):
        assert studio.get(script).status_code == 200


def every_route(routes: list[Any]) -> Iterator[Any]:
    """The app's routes, those of included routers too (FastAPI wraps each router)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from every_route(inner.routes)
        else:
            yield route


def test_every_route_answers_401_without_the_token(studio: TestClient) -> None:
    checked = 0
    for route in every_route(studio.app.routes):  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            paths = [(f"{route.path}/studio.js", "GET")]
        elif isinstance(route, APIRoute):
            paths = [(re.sub(r"\{[^}]+\}", "x", route.path), m) for m in route.methods]
        else:
            continue
        for path, method in paths:
            answer = studio.request(method, path, json={})
            if path == "/login":
                assert answer.status_code == 200 and "token" in answer.text
                continue
            assert answer.status_code == 401, (method, path)
            assert "token" in answer.json()["error"]
            wrong = studio.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, (method, path)
            checked += 1
    assert checked > 25


def test_the_one_time_url_sets_a_strict_http_only_cookie(studio: TestClient) -> None:
    assert studio.get("/?token=wrong", follow_redirects=False).status_code == 401
    answer = studio.get("/data?token=" + TOKEN, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/data"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie  # a random session id, never the token itself
    assert studio.get("/api/jobs").status_code == 200  # the cookie is enough now


def test_the_job_form_shows_the_clis_error_for_the_field(
    studio: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chattune.cli.main import _register, app

    monkeypatch.chdir(tmp_path)
    form = {
        "model": "tiny-random-phi3",
        "data": {"train": "data/train.jsonl"},
        "parameters": {"learning_rate": -1, "max_steps": ""},
    }
    answer = authorized(studio).post("/api/jobs", json=form)
    assert answer.status_code == 422
    error = answer.json()
    assert error["field"] == "parameters.learning_rate"

    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({k: v for k, v in form.items() if k != "parameters"}))
    spec.write_text(spec.read_text() + "parameters:\n  learning_rate: -1\n")
    _register()
    result = CliRunner().invoke(app, ["jobs", "create", "-f", str(spec)])
    cli_message = result.exception.message  # type: ignore[union-attr]
    # The same field and words; only the location differs (form vs file:line).
    assert cli_message.split(": ", 2)[1:] == error["error"].split(": ", 2)[1:]
    assert error["hint"] == result.exception.hint  # type: ignore[union-attr]

    preview = studio.post("/api/jobs-form/preview", json=form).json()
    assert preview["field"] == "parameters.learning_rate"
    assert "learning_rate: -1" in preview["yaml"]
    bad_data = {**form, "data": {"train": "nope.jsonl"}, "parameters": {}}
    missing = studio.post("/api/jobs", json=bad_data).json()
    assert missing["field"] == "data.train"


def test_the_api_reads_jobs_data_and_models(studio: TestClient) -> None:
    http = authorized(studio)
    assert [j["name"] for j in http.get("/api/jobs").json()][:1] == ["job-002"]
    job = http.get("/api/jobs/job-000").json()
    assert job["status"] == "completed" and len(job["stages"]) == 6
    assert http.get("/api/jobs/job-000/metrics").json()["history"] == {}
    assert http.get("/api/jobs/missing").status_code == 404
    refused = http.post("/api/jobs/job-000/cancel")
    assert refused.status_code == 409 and "completed already" in refused.json()["error"]
    assert "resumed" in http.post("/api/jobs/job-000/resume").json()["hint"]
    report = http.post("/api/data/validate", json={"path": "data/bad.jsonl"}).json()
    assert not report["ok"] and any(p["line"] == 3 for p in report["problems"])
    shown = http.post("/api/data/show", json={"path": "data/train.jsonl", "model": None}).json()
    assert shown["stats"]["rows"] == 12 and shown["conversations"][0][0]["role"] == "system"
    lineage = http.get("/api/models/tiny-chat/2/lineage").json()
    assert lineage["job"]["name"] == "job-000" and lineage["deployments"] == []
    keys = http.get("/api/endpoints/ep").json()["keys"]
    assert all(v.startswith("••••") for v in keys.values())


def test_playground_snippets_name_the_request_but_not_the_key(studio: TestClient) -> None:
    body = {"endpoint": "ep", "deployment": "blue", "system": "Be brief.", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
    out = authorized(studio).post("/api/playground/snippets", json=body).json()
    assert '"max_tokens": 8' in out["curl"] and "azureml-model-deployment: blue" in out["curl"]
    assert "max_tokens=8" in out["python"] and "CHATTUNE_KEY" in out["python"]
    for key in studio.get("/api/endpoints/ep/keys").json().values():
        assert key not in out["curl"] + out["python"]
    refused = studio.post("/api/playground/chat", json=body)  # its gateway is not running
    assert refused.status_code == 409


def test_playground_errors_are_readable(studio: TestClient) -> None:
    from chattune.studio.playground import gateway_error

    raw = b'{"error": {"code": "no_traffic", "message": "endpoint ep routes no traffic"}}'
    assert gateway_error(404, raw) == {
        "error": {"code": "no_traffic", "message": "endpoint ep routes no traffic", "status": 404}
    }
    assert gateway_error(502, b"Bad Gateway\nmore")["error"]["message"] == "Bad Gateway"
    assert gateway_error(500, b"")["error"] == {
        "code": "http_500",
        "message": "no message",
        "status": 500,
    }
    body = {"endpoint": "", "messages": [{"role": "user", "content": "Hi"}]}
    refused = authorized(studio).post("/api/playground/chat", json=body)
    assert refused.status_code == 422 and "no endpoint chosen" in refused.json()["error"]


def serve(client: Client, ref: str, traffic: int) -> None:
    """A deployment record of endpoint ``ep`` serving ``ref`` (no worker: ep is not running)."""
    from chattune.store import workspace_store

    store = workspace_store(client.workspace).endpoints
    name, version = ref.split(":")
    store.insert_deployment("ep", "blue", ref, str(client.workspace.model_dir(name, version)), {})
    store.set_traffic("ep", {"blue": traffic} if traffic else {}, {})


def test_actions_follow_the_clis_rules(studio: TestClient) -> None:
    http = authorized(studio)
    client: Client = studio.app.state.client  # type: ignore[attr-defined]
    serve(client, "tiny-chat:1", 100)
    refused = http.delete("/api/models/tiny-chat/1")
    assert refused.status_code == 409 and "served by" in refused.json()["error"]
    busy = http.delete("/api/endpoints/ep/deployments/blue")
    assert busy.status_code == 409 and "still gets traffic" in busy.json()["error"]
    assert http.delete("/api/endpoints/ep/deployments/nope").status_code == 404
    hidden = http.post("/api/models/tiny-chat/2/archive", json={"archived": True}).json()
    assert hidden["archived"] and "tiny-chat:2" not in [
        m["ref"] for m in http.get("/api/models").json()
    ]
    assert "tiny-chat:2" in [m["ref"] for m in http.get("/api/models?archived=true").json()]
    page = http.get("/models").text
    assert "Restore" in page and 'data-action="DELETE /api/models/tiny-chat/2"' in page
    http.post("/api/models/tiny-chat/2/archive", json={"archived": False})
    assert http.delete("/api/models/tiny-chat/2").json() == {"deleted": "tiny-chat:2"}
    assert [m.ref for m in client.models.list(archived=True)] == ["tiny-chat:1"]
    from chattune.store import workspace_store

    workspace_store(client.workspace).endpoints.set_traffic("ep", {}, {})  # ep is not running
    assert http.delete("/api/endpoints/ep/deployments/blue").status_code == 200
    assert 'data-action="POST /api/endpoints/ep/start"' in http.get("/endpoints").text
    assert http.delete("/api/endpoints/ep").json() == {"deleted": "ep"}
    assert client.endpoints.list() == []


def test_compare_takes_two_to_five_jobs(studio: TestClient) -> None:
    http = authorized(studio)
    found = http.get("/api/jobs-compare?jobs=job-000,job-001").json()
    assert [j["name"] for j in found["jobs"]] == ["job-000", "job-001"]
    assert found["jobs"][0]["parameters"] == {"learning_rate": 2e-5}
    assert "loss" in found["curves"] and "grad_norm" in found["curves"]
    one = http.get("/api/jobs-compare?jobs=job-000")
    assert one.status_code == 422 and "2 to 5" in one.json()["error"]
    six = ",".join(["job-000", "job-001", "job-002", "a", "b", "c"])
    assert http.get(f"/api/jobs-compare?jobs={six}").status_code == 422
    assert http.get("/compare?jobs=job-000,nope").status_code == 404
    assert 'class="pick" value="job-001"' in http.get("/").text


def test_live_progress_and_resources() -> None:
    import os
    import time

    from chattune.studio.live import eta, usage

    started = time.time() - 10
    found = eta({"stage": "finetune", "step": 5, "total": 20}, started)
    assert found["fraction"] == 0.25 and 29 <= found["eta_s"] <= 31
    assert eta({"stage": "evaluate"}, started) == {"stage": "evaluate"}
    first = usage(os.getpid())
    assert first is not None and first["rss_mb"] > 10 and first["cpu_percent"] is None
    sum(i * i for i in range(300_000))  # some CPU between the two looks
    second = usage(os.getpid())
    assert second is not None and second["cpu_percent"] is not None
    assert usage(None) is None and usage(2**22 + 12345) is None


def test_the_job_form_defaults_to_a_model_that_fits(studio: TestClient) -> None:
    http = authorized(studio)
    form = http.get("/api/jobs-form/parameters").json()
    checks = form["checks"]
    assert checks[form["recommended"]]["ok"]
    bigger = [m for m, c in checks.items() if not c["ok"]]
    page = http.get("/jobs-new").text
    assert f'<option value="{form["recommended"]}" selected>' in page
    for model in bigger:  # e.g. Phi-3-mini on a small CPU machine: marked, not chosen
        assert f'<option value="{model}">{model}' in page and "does not fit" in page
    assert set(form["shown"]) < set(form["parameters"])  # the rest: under "Advanced"
    assert 'id="params-advanced"' in page
