"""The jobs pages: the list, one job (stages, live log and curves, parameters, evaluation
report, cancel/resume/register), the new-job form, and the public login page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chattune.studio.api_jobs import job_summary, machine_fit
from chattune.studio.deps import client_of
from chattune.studio.html import badge, esc, layout, link, seconds, table, when

router = APIRouter(default_response_class=HTMLResponse)


@router.get("/login")
def login() -> str:
    """The one page without the token: it says how to get in (nothing of the workspace)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>chattune studio</title>"
        "</head><body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
        "<h1>chattune studio</h1><p>This studio needs its token. Open the URL that "
        "<code>chattune studio</code> printed when it started (it ends in "
        "<code>?token=…</code>); the page then remembers you with a cookie. Lost it? Stop "
        "the studio and start it again for a new one.</p></body></html>"
    )


def pick_box(name: str) -> str:
    return (
        f'<input type="checkbox" class="pick" value="{esc(name)}" aria-label="compare {esc(name)}">'
    )


@router.get("/")
def jobs_page(request: Request) -> str:
    rows = []
    for job in client_of(request).jobs.list():
        s = job_summary(job)
        rows.append(
            [
                pick_box(s["name"]),
                link(f"/jobs/{s['name']}", s["name"]),
                badge(s["status"]) + (f" #{s['queue_position']}" if s["queue_position"] else ""),
                esc(s["model"]),
                esc(s["data"]),
                esc(when(s["created_at"])),
                esc(seconds(s["duration"])),
                esc(s["stage"]),
            ]
        )
    headers = ["compare", "name", "status", "model", "data", "created", "duration", "stage"]
    body = (
        '<p class="row"><a class="button" href="/jobs-new">New job</a> '
        '<button type="button" id="compare" disabled>Compare selected (2-5)</button> '
        '<span id="jobs-live" class="muted" role="status" aria-live="polite"></span></p>'
        + table(headers, rows, id="jobs", empty="no jobs yet: create one with New job")
    )
    return layout("Jobs", "/", body, "jobs.js")


@router.get("/jobs/{name}")
def job_page(request: Request, name: str) -> str:
    job = client_of(request).jobs.get(name)
    stages = [
        [
            esc(s.name),
            badge(s.status),
            esc(seconds(s.duration)),
            "reused" if s.note and "reuse" in s.note else ("run" if s.started_at else ""),
            esc(s.error or s.note or ""),
        ]
        for s in job.stages
    ]
    params = [
        [esc(k), esc(v.get("value")), esc(v.get("source"))] for k, v in job.parameters.items()
    ]
    actions = (
        '<button id="cancel">Cancel</button> <button id="resume">Resume</button> '
        '<span class="register"><input id="register-name" placeholder="model name" '
        'aria-label="model name to register as" '
        f'value="{esc(name)}"> <button id="register">Register model</button></span> '
        '<span id="action-result" class="muted"></span>'
    )
    body = (
        f'<p><span id="job-status">{badge(job.status)}</span> '
        '<span id="job-status-text" role="status" aria-live="polite"></span> model '
        f"<b>{esc(job.spec.get('model'))}</b>, data {esc(job_summary(job)['data'])}"
        f", created {esc(when(job.created_at))}</p>"
        f'<p class="error" id="job-error">{esc(job.error or "")}</p>'
        f'<div class="actions">{actions}</div>'
        '<div class="grid"><section><h2>Stages</h2>'
        + table(["stage", "status", "time", "reused or run", "note"], stages, id="stages")
        + '</section><section><h2>Loss</h2><div id="curve" class="curve">'
        '<p class="muted">no points yet</p></div>'
        '<div id="rewards" class="curve"></div>'  # method: dpo (drawn when logged)
        '<p><span id="progress" class="muted" role="status" '
        'aria-live="polite"></span> <span id="progress-meter" class="meter" role="progressbar" '
        'aria-label="stage progress" aria-valuemin="0" aria-valuemax="100" hidden><span>'
        '</span></span></p><p id="resources" class="muted"></p>'
        "</section></div>"
        '<h2>Log</h2><pre id="log" class="log" tabindex="0" role="log" aria-label="job log"></pre>'
        '<h2>Evaluation report</h2><div id="report"><p class="muted">after the evaluate '
        "stage</p></div>"
        "<h2>Effective parameters</h2>"
        + table(["parameter", "value", "source"], params, id="parameters")
    )
    return layout(f"Job {name}", "/", body, "job.js", {"name": name})


def model_option(card: Any, fit: dict[str, Any]) -> str:
    """A catalog model, marked when it does not fit this machine; the one that fits best
    selected."""
    check = fit["checks"].get(card.name, {})
    note = "" if check.get("ok") else ", does not fit this machine"
    chosen = " selected" if card.name == fit["recommended"] else ""
    return (
        f'<option value="{esc(card.name)}"{chosen}>{esc(card.name)} '
        f"({esc(card.parameters)}{note})</option>"
    )


@router.get("/jobs-new")
def new_job_page(request: Request) -> str:
    client = client_of(request)
    fit = machine_fit(request)
    files = client.data.files(request.app.state.root)
    options = "".join(model_option(c, fit) for c in client.models.catalog())
    data_list = "".join(f'<option value="{esc(f)}">' for f in files)
    body = (
        '<form id="job-form" class="form" autocomplete="off"><div class="fields">'
        '<label>name <input name="name" placeholder="job-…"></label><div class="err" '
        'id="err-name"></div>'
        '<label>method <select name="method"><option value="sft">sft (supervised)</option>'
        '<option value="dpo">dpo (preference pairs)</option></select></label>'
        '<div class="err" id="err-method"></div>'
        f'<label>model <select name="model" aria-describedby="compute">{options}</select></label>'
        '<p id="compute" class="muted" aria-live="polite"></p>'
        '<div class="err" id="err-model"></div>'
        '<label>train data <input name="data.train" list="data-files"></label>'
        '<div class="err" id="err-data.train"></div>'
        '<label>test data <input name="data.test" list="data-files"></label>'
        '<div class="err" id="err-data.test"></div>'
        '<label>test_gen data <input name="data.test_gen" list="data-files"></label>'
        '<div class="err" id="err-data.test_gen"></div>'
        f'<datalist id="data-files">{data_list}</datalist>'
        '<h2>Parameters</h2><p class="muted">empty: the model card\'s value, else the '
        'default shown</p><div id="params"></div><details class="advanced"><summary>Advanced '
        'parameters</summary><div id="params-advanced"></div></details></div>'
        '<div class="side"><h2>YAML it submits</h2><pre id="yaml"></pre>'
        '<div class="err" id="err-form"></div>'
        '<button type="submit" id="submit">Create job</button></div></form>'
    )
    return layout("New job", "/jobs-new", body, "newjob.js", {"files": files})
