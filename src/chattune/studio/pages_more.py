"""The data, models (with lineage), endpoints and playground pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chattune.studio.api_endpoints import mask
from chattune.studio.api_models import served_by
from chattune.studio.deps import client_of
from chattune.studio.html import action, badge, esc, layout, link, table, when

router = APIRouter(default_response_class=HTMLResponse)


@router.get("/data")
def data_page(request: Request) -> str:
    client = client_of(request)
    files = client.data.files(request.app.state.root)
    options = "".join(f'<option value="{esc(f)}">{esc(f)}</option>' for f in files)
    models = "".join(f'<option value="{esc(c.name)}">' for c in client.models.catalog())
    body = (
        '<form id="data-form" class="row"><label>file <select name="path">'
        f'{options}</select></label> <label>or path <input name="other"></label> '
        '<label>tokenizer of <input name="model" list="models" value="tiny-random-phi3">'
        f'</label><datalist id="models">{models}</datalist> <label>max_seq_length '
        '<input name="max_seq_length" type="number" value="256" min="8"></label> '
        '<button id="validate">Validate</button> <button id="stats">Stats</button></form>'
        '<div id="data-result"></div><div id="histogram" class="curve"></div>'
        '<div id="conversations"></div>'
    )
    return layout("Data", "/data", body, "data.js", {"files": files})


@router.get("/models")
def models_page(request: Request) -> str:
    client = client_of(request)
    cards = [
        [esc(c.name), esc(c.version), esc(c.parameters), esc(c.context_length), esc(c.source)]
        for c in client.models.catalog()
    ]
    versions = [
        [
            link(f"/models/{m.name}/{m.version}", m.ref),
            " ".join(badge(x) for x in [*m.labels, *(["archived"] if m.archived else [])]),
            link(f"/jobs/{m.job}", m.job) if m.job else "",
            esc(m.base_model),
            esc(when(m.created_at)),
            version_actions(m.name, m.version, m.archived),
        ]
        for m in client.models.list(archived=True)
    ]
    headers = ["version", "labels", "job", "base model", "registered", "actions"]
    body = (
        "<h2>Registry</h2>"
        + table(headers, versions, id="registry")
        + "<h2>Catalog</h2>"
        + table(["model", "version", "size", "context", "source"], cards, id="catalog")
    )
    return layout("Models", "/models", body)


def version_actions(name: str, version: str, archived: bool, then: str = "") -> str:
    """Archive or restore, and delete (refused while a deployment serves it)."""
    ref, path = f"{name}:{version}", f"/api/models/{name}/{version}"
    flip = action(
        "Restore" if archived else "Archive",
        "POST",
        f"{path}/archive",
        body={"archived": not archived},
        label=f"{'restore' if archived else 'archive'} {ref}",
    )
    delete = action(
        "Delete",
        "DELETE",
        path,
        confirm=f"Delete {ref} and its files? (refused while a deployment serves it)",
        then=then,
        label=f"delete {ref}",
    )
    return f"{flip} {delete}"


def lineage_chain(found: dict[str, Any], served: list[dict[str, Any]]) -> str:
    """deployment → version → job → base model → data hashes, as boxes and arrows."""
    deployed = "<br>".join(
        link(f"/endpoints/{d['endpoint']}", f"{d['endpoint']}/{d['deployment']}")
        + f" ({d['traffic']}%)"
        for d in served
    )
    model, job, base = found["model"], found["job"], found["base_model"] or {}
    data = "<br>".join(
        f"{esc(d.get('split'))}: <code>{esc((d.get('sha256') or '')[:12])}</code> "
        f"{esc(d.get('path') or '')}"
        for d in found["data"]
    )
    nodes = [
        ("deployment", deployed or '<span class="muted">not deployed</span>'),
        (
            "version",
            f"<b>{esc(model['ref'])}</b><br>" + " ".join(badge(x) for x in model["labels"]),
        ),
        ("job", link(f"/jobs/{job['name']}", job["name"]) if job.get("name") else ""),
        ("base model", f"<b>{esc(base.get('name'))}</b><br>{esc(base.get('source'))}"),
        ("data", data or '<span class="muted">no data hashes</span>'),
    ]
    boxes = [f'<div class="node"><span class="muted">{t}</span><br>{v}</div>' for t, v in nodes]
    return f'<div class="chain" id="lineage">{"<span class=arrow>→</span>".join(boxes)}</div>'


@router.get("/models/{name}/{version}")
def lineage_page(request: Request, name: str, version: str) -> str:
    client = client_of(request)
    found = client.models.lineage(name, version)
    archived = client.models.show(name, version).archived
    metrics = [
        [esc(k), esc(f"{v:.4g}" if isinstance(v, float) else v)]
        for k, v in found["metrics"].items()
    ]
    body = (
        f'<p class="actions">{version_actions(name, version, archived, then="/models")}</p>'
        + lineage_chain(found, served_by(request, found["model"]["ref"]))
        + "<h2>Metrics</h2>"
        + table(["metric", "value"], metrics)
        + f'<p><label>add label <input id="label-name"></label> <button id="add-label" '
        f'data-model="{esc(name)}" data-version="{esc(version)}">Add</button> '
        '<span id="label-result" class="err"></span></p>'
    )
    return layout(f"Model {name}:{version}", "/models", body, "models.js")


@router.get("/endpoints")
def endpoints_page(request: Request) -> str:
    rows = [
        [
            link(f"/endpoints/{e.name}", e.name),
            badge(e.status),
            esc(e.base_url or ""),
            esc(", ".join(f"{k}={v}" for k, v in e.traffic.items())),
            esc(", ".join(e.deployments)),
            endpoint_actions(e.name, e.status),
        ]
        for e in client_of(request).endpoints.list()
    ]
    headers = ["endpoint", "status", "url", "traffic", "deployments", "actions"]
    body = (
        table(headers, rows, id="endpoints")
        + '<form id="endpoint-form" class="row"><label>new endpoint <input name="name" '
        'required></label> <button>Create endpoint</button> <span id="endpoint-result" '
        'class="muted"></span></form>'
    )
    return layout("Endpoints", "/endpoints", body, "endpoints.js")


def endpoint_actions(name: str, status: str, then: str = "") -> str:
    """Start (a dead gateway back, as `chattune endpoints start`) and delete."""
    start = ""
    if status != "running":
        start = action("Start", "POST", f"/api/endpoints/{name}/start", label=f"start {name}")
    delete = action(
        "Delete",
        "DELETE",
        f"/api/endpoints/{name}",
        confirm=f"Delete endpoint {name}? Its gateway and workers stop; keys, logs and "
        "records are removed.",
        then=then,
        label=f"delete endpoint {name}",
    )
    return f"{start} {delete}"


def deployment_row(d: Any, info: Any) -> list[str]:
    """One deployment: health, model, instances, editable traffic and mirror weights."""
    settings = d.settings
    return [
        esc(d.name),
        badge(d.status),
        link(f"/models/{d.model.replace(':', '/')}", d.model),
        esc(len(d.instances)),
        f'<input class="weight" data-name="{esc(d.name)}" type="number" min=0 max=100 '
        f'aria-label="traffic % for {esc(d.name)}" '
        f'value="{info.traffic.get(d.name, 0)}">',
        f'<input class="mirror" data-name="{esc(d.name)}" type="number" min=0 max=100 '
        f'aria-label="mirror % for {esc(d.name)}" '
        f'value="{info.mirror_traffic.get(d.name, 0)}">',
        esc(
            f"timeout {settings.request_timeout_ms} ms, {settings.instance_count} instance(s), "
            f"concurrency {settings.concurrency}"
        ),
        f'<button class="logs" data-name="{esc(d.name)}" aria-label="logs of {esc(d.name)}">'
        "logs</button> "
        + action(
            "Delete",
            "DELETE",
            f"/api/endpoints/{info.name}/deployments/{d.name}",
            confirm=f"Delete deployment {d.name}? Its workers stop (refused while it still "
            "gets traffic: set its weight to 0 first).",
            label=f"delete deployment {d.name}",
        ),
    ]


@router.get("/endpoints/{name}")
def endpoint_page(request: Request, name: str) -> str:
    client = client_of(request)
    info = client.endpoints.get(name)
    deployments = client.endpoints.list_deployments(name)
    keys = client.endpoints.get_keys(name)
    rows = [deployment_row(d, info) for d in deployments]
    key_rows = [
        [
            esc(k),
            f"<code>{esc(mask(v))}</code>",
            f'<button class="copy" data-key="{esc(k)}">copy</button> <button '
            f'class="regen" data-key="{esc(k.removesuffix("_key"))}">regenerate</button>',
        ]
        for k, v in keys.items()
    ]
    models = "".join(f'<option value="{esc(m.ref)}">' for m in client.models.list())
    body = (
        f"<p>{badge(info.status)} {esc(info.base_url or '')} "
        f'<span class="error">{esc(info.error or "")}</span></p>'
        f'<p class="actions">{endpoint_actions(name, info.status, then="/endpoints")}</p>'
        "<h2>Deployments</h2>"
        + table(
            [
                "deployment",
                "health",
                "model",
                "instances",
                "traffic %",
                "mirror %",
                "request settings",
                "actions",
            ],
            rows,
            id="deployments",
        )
        + '<p><button id="save-traffic">Save traffic</button> <span id="traffic-result" '
        'class="err"></span><span id="traffic-saved" class="muted"></span></p>'
        '<form id="deployment-form" class="row"><label>new deployment <input name="name" '
        'required></label> <label>model <input name="model" list="models" required></label>'
        f'<datalist id="models">{models}</datalist> <button>Deploy</button> '
        '<span id="deployment-result" class="muted"></span></form>'
        "<h2>Keys</h2>"
        + table(["key", "value", "actions"], key_rows, id="keys")
        + '<span id="key-result" class="muted"></span>'
        '<h2>Recent logs <span id="log-name" class="muted">gateway</span></h2>'
        '<pre id="endpoint-log" class="log" tabindex="0" role="log" '
        'aria-label="endpoint log"></pre>'
    )
    return layout(f"Endpoint {name}", "/endpoints", body, "endpoint.js", {"name": name})


def chat_pane(suffix: str, title: str, options: str, hidden: bool = False) -> str:
    """One column of the playground: its endpoint and deployment, the chat, its numbers."""
    return (
        f'<section class="pane" id="pane{suffix or "_a"}"{" hidden" if hidden else ""}>'
        f"<h2>{esc(title)}</h2><div class=row>"
        f'<label>endpoint <select name="endpoint{suffix}">{options}</select></label>'
        f'<label>deployment <select name="deployment{suffix}"></select></label></div>'
        f'<div class="chat" role="log" aria-live="polite" aria-label="{esc(title)} chat" '
        'tabindex="0"></div><p class="stats muted" aria-live="polite"></p></section>'
    )


@router.get("/playground")
def playground_page(request: Request) -> str:
    endpoints = client_of(request).endpoints.list()
    options = "".join(
        f'<option value="{esc(e.name)}">{esc(e.name)} ({esc(e.status)})</option>' for e in endpoints
    )
    deployments = {e.name: e.deployments for e in endpoints}
    buttons = "".join(
        f'<button type="button" id="{i}" class="secondary">{t}</button> '
        for i, t in (("stop", "Stop"), ("regenerate", "Regenerate"), ("new-chat", "New chat"),
                     ("export", "Export JSONL"))
    )  # fmt: skip
    body = (
        '<div class="grid"><form id="chat-form" class="form">'
        '<label>system prompt <textarea name="system" rows=2></textarea></label>'
        '<div class="row"><label>temperature <input name="temperature" type="number" '
        'step=0.1 min=0 max=2 value=0.7></label><label>top_p <input name="top_p" '
        'type="number" step=0.05 min=0 max=1 value=1></label><label>max_tokens <input '
        'name="max_tokens" type="number" min=1 value=64></label></div>'
        '<label class="check"><input type="checkbox" id="compare"> side by side: send the '
        "same messages to a second deployment</label>"
        '<div class="panes">'
        + chat_pane("", "Chat", options)
        + chat_pane("_b", "Second deployment", options, hidden=True)
        + '</div><label>message <textarea name="message" rows=3 '
        'aria-describedby="keys-help"></textarea></label>'
        '<p id="keys-help" class="muted">Enter sends, Shift+Enter starts a new line</p>'
        f'<p><button id="send" type="submit">Send</button> {buttons}</p>'
        '<p id="chat-status" role="status" aria-live="polite"></p></form>'
        '<section><h2>curl</h2><pre id="curl" tabindex="0"></pre><h2>Python (openai)</h2>'
        '<pre id="python" tabindex="0"></pre></section></div>'
    )
    return layout("Playground", "/playground", body, "playground.js", {"deployments": deployments})
