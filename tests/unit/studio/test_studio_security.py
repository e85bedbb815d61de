"""The studio's gate over a real workspace (no browser): the login token opens one session
(never the cookie), state-changing requests from another origin or without the CSRF token
get 403 before any handler runs, and the data routes read only inside the data folders and
answer the same for a missing file and for any path outside (existing or not)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.studio_workspace import populate, write_data

from chattune.client import Client
from chattune.studio import create_studio_app

TOKEN = "test-token-123"
BASE = "http://127.0.0.1:8765"
OTHER_PORT = "http://127.0.0.1:9999"


@pytest.fixture
def project(workspace: Path, tmp_path: Path, tiny_model_dir: Path) -> tuple[Client, Path]:
    client = Client.init(workspace)
    root = tmp_path / "project"
    root.mkdir()
    populate(client, root, tiny_model_dir)
    return client, root


def probed(app: FastAPI) -> list[str]:
    """A route that records each call: a refused request must not reach a handler."""
    reached: list[str] = []

    @app.post("/api/probe")
    def probe() -> dict[str, str]:
        reached.append("probe")
        return {"ok": "yes"}

    return reached


@pytest.fixture
def studio(project: tuple[Client, Path]) -> Iterator[TestClient]:
    client, root = project
    app = create_studio_app(client, TOKEN, root=root)
    app.state.reached = probed(app)
    with TestClient(app, base_url=BASE) as http:
        yield http


def log_in(http: TestClient) -> str:
    """Open a session with the token URL; the page's CSRF token."""
    assert http.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
    csrf = http.get("/api/session").json()["csrf"]
    assert csrf
    return str(csrf)


def test_the_token_is_exchanged_once_for_a_random_session(studio: TestClient) -> None:
    answer = studio.get(f"/?token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303
    session = studio.cookies.get("chattune_studio")
    assert session and session != TOKEN and len(session) >= 32
    assert studio.get("/api/jobs").status_code == 200
    again = TestClient(studio.app, base_url=BASE)  # another browser, the same URL
    second = again.get(f"/?token={TOKEN}", follow_redirects=False)
    assert second.status_code == 401 and "used already" in second.json()["error"]
    assert again.get("/api/jobs").status_code == 401
    # The browser that logged in may reload the URL (an old tab): it is let through.
    assert studio.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
    forged = TestClient(studio.app, base_url=BASE, cookies={"chattune_studio": TOKEN})
    assert forged.get("/api/jobs").status_code == 401  # the token is not a session


def test_reuse_token_lets_the_url_log_in_again(project: tuple[Client, Path]) -> None:
    client, root = project
    app = create_studio_app(client, TOKEN, root=root, reuse_token=True)
    sessions = set()
    for _ in range(2):
        with TestClient(app, base_url=BASE) as http:
            assert http.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
            assert http.get("/api/jobs").status_code == 200
            sessions.add(http.cookies.get("chattune_studio"))
    assert len(sessions) == 2


CHANGES = [
    ("POST", "/api/probe", None),
    ("POST", "/api/jobs/job-000/cancel", None),
    ("POST", "/api/jobs/job-000/resume", None),
    ("POST", "/api/endpoints", {"name": "evil"}),
    ("PUT", "/api/endpoints/ep/traffic", {"traffic": {}}),
    ("POST", "/api/endpoints/ep/keys", {"key_type": "primary"}),
    ("DELETE", "/api/endpoints/ep", None),
    ("DELETE", "/api/models/tiny-chat/1", None),
    ("POST", "/api/jobs", {"model": "tiny-random-phi3", "data": {"train": "data/train.jsonl"}}),
]


@pytest.mark.parametrize("method,path,body", CHANGES)
def test_changes_from_another_origin_are_refused_before_the_handler(
    studio: TestClient, project: tuple[Client, Path], method: str, path: str, body: object
) -> None:
    client, _ = project
    csrf = log_in(studio)
    keys = client.endpoints.get_keys("ep")
    for origin in (OTHER_PORT, "http://evil.example", "null"):
        headers = {"Origin": origin, "X-Chattune-CSRF": csrf}
        answer = studio.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (origin, answer.text)
        assert "origin" in answer.json()["error"]
    referer = {"Referer": OTHER_PORT + "/x", "X-Chattune-CSRF": csrf}
    assert studio.request(method, path, json=body, headers=referer).status_code == 403
    missing = studio.request(method, path, json=body, headers={"Origin": BASE})
    assert missing.status_code == 403 and "CSRF" in missing.json()["error"]
    wrong = {"Origin": BASE, "X-Chattune-CSRF": csrf[:-1] + "x"}
    assert studio.request(method, path, json=body, headers=wrong).status_code == 403
    assert studio.app.state.reached == []  # type: ignore[attr-defined]
    assert [e.name for e in client.endpoints.list()] == ["ep"]
    assert client.endpoints.get_keys("ep") == keys
    assert {j.name for j in client.jobs.list()} == {"job-000", "job-001", "job-002"}
    assert client.jobs.get("job-000").status == "completed"
    assert len(client.models.list()) == 2


def test_own_origin_with_the_csrf_token_reaches_the_handler(studio: TestClient) -> None:
    csrf = log_in(studio)
    answer = studio.post("/api/probe", headers={"Origin": BASE, "X-Chattune-CSRF": csrf})
    assert answer.status_code == 200 and studio.app.state.reached == ["probe"]  # type: ignore[attr-defined]
    by_bearer = TestClient(studio.app, base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_bearer.post("/api/probe").status_code == 200  # a script: no ambient credential
    assert by_bearer.post("/api/probe", headers={"Origin": OTHER_PORT}).status_code == 403


def test_a_foreign_host_is_refused(studio: TestClient) -> None:
    """DNS rebinding: a name that resolves to 127.0.0.1 but is not the studio's."""
    log_in(studio)
    answer = studio.get("/api/jobs", headers={"Host": "evil.example:8765"})
    assert answer.status_code == 403 and "host" in answer.json()["error"]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the project with a valid data file in it."""
    return write_data(tmp_path / "elsewhere").parent


def bearer_client(studio: TestClient) -> TestClient:
    studio.headers["Authorization"] = f"Bearer {TOKEN}"
    return studio


@pytest.mark.parametrize("route", ["/api/data/validate", "/api/data/show"])
def test_data_routes_read_only_inside_the_data_folders(
    studio: TestClient, outside: Path, route: str
) -> None:
    http = bearer_client(studio)
    inside = http.post(route, json={"path": "data/train.jsonl"})
    assert inside.status_code == 200, inside.text
    tries = {
        "/etc/passwd": "exists",
        "/etc/no-such-file.jsonl": "missing",
        "../x.jsonl": "missing",
        "../elsewhere/data/train.jsonl": "exists",
        str(outside / "train.jsonl"): "exists",
        "~/.bashrc": "maybe",
        "data/nope.jsonl": "missing",
        "data": "a folder",
    }
    answers = {}
    for path in tries:
        answer = http.post(route, json={"path": path})
        assert answer.status_code == 404, (path, answer.text)
        body = answer.json()
        assert "conversations" not in body and "rows" not in body
        answers[path] = body["error"].replace(f"file {path}:", "file PATH:", 1)
    assert len(set(answers.values())) == 1, answers  # nothing tells them apart


def test_a_link_out_of_the_data_folder_is_refused(
    studio: TestClient, project: tuple[Client, Path], outside: Path
) -> None:
    _, root = project
    (root / "data" / "link.jsonl").symlink_to(outside / "train.jsonl")
    answer = bearer_client(studio).post("/api/data/show", json={"path": "data/link.jsonl"})
    assert answer.status_code == 404


def test_a_data_dir_named_at_start_is_readable(project: tuple[Client, Path], outside: Path) -> None:
    client, root = project
    app = create_studio_app(client, TOKEN, root=root, data_dirs=[outside])
    with TestClient(app, base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = http.post("/api/data/show", json={"path": str(outside / "train.jsonl")})
        assert answer.status_code == 200 and answer.json()["stats"]["rows"] == 12


def test_the_job_form_takes_data_only_from_the_data_folders(
    studio: TestClient, project: tuple[Client, Path], outside: Path
) -> None:
    client, _ = project
    http = bearer_client(studio)
    names = {j.name for j in client.jobs.list()}
    for path in (str(outside / "train.jsonl"), "/etc/passwd", "../elsewhere/data/train.jsonl"):
        form = {"model": "tiny-random-phi3", "data": {"train": path}}
        answer = http.post("/api/jobs", json=form)
        assert answer.status_code == 404 and answer.json()["field"] == "data.train"
        preview = http.post("/api/jobs-form/preview", json=form).json()
        assert preview["field"] == "data.train"
    form = {"model": "/etc", "data": {"train": "data/train.jsonl"}}
    assert http.post("/api/jobs", json=form).json()["field"] == "model"
    assert {j.name for j in client.jobs.list()} == names


def test_data_routes_answer_json_for_any_failure(
    studio: TestClient, project: tuple[Client, Path]
) -> None:
    _, root = project
    (root / "data" / "binary.jsonl").write_bytes(bytes(range(256)) * 8)
    (root / "data" / "table.parquet").write_bytes(b"not parquet")
    (root / "data" / "list.json").write_text(json.dumps([1, 2, 3]))
    http = bearer_client(studio)
    for name in ("binary.jsonl", "table.parquet", "list.json"):
        for route in ("/api/data/validate", "/api/data/show"):
            body = {"path": f"data/{name}", "model": "tiny-random-phi3"}
            answer = http.post(route, json=body)
            assert answer.headers["content-type"] == "application/json", (route, name)
            assert "error" in answer.json() or answer.status_code == 200
    for bad in ({}, {"path": ""}, {"path": "data/train.jsonl", "rows": "x"}):
        answer = http.post("/api/data/show", json=bad)
        assert answer.status_code == 422 and "request" in answer.json()["error"]


def test_an_unexpected_failure_is_a_json_500(studio: TestClient) -> None:
    app = studio.app

    @app.get("/api/boom")  # type: ignore[attr-defined,untyped-decorator]
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as http:
        answer = http.get("/api/boom", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 500 and "internal error" in answer.json()["error"]
