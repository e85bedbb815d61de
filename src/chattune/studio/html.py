"""Small HTML building blocks for the studio's pages (escaped text, tables, the layout)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

NAV = (
    ("/", "Jobs"),
    ("/jobs-new", "New job"),
    ("/data", "Data"),
    ("/models", "Models"),
    ("/endpoints", "Endpoints"),
    ("/playground", "Playground"),
)


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def link(href: str, text: Any) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else ""


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def action(
    text: str,
    method: str,
    path: str,
    confirm: str = "",
    then: str = "",
    body: Any = None,
    label: str = "",
) -> str:
    """A button that calls ``method path`` (after ``confirm``, when given), then reloads the
    page or opens ``then``; errors show in the page's status line (studio.js wires it)."""
    attrs = {
        "type": "button",
        "class": "action" + (" danger" if method == "DELETE" else ""),
        "data-action": f"{method} {path}",
        "data-confirm": confirm,
        "data-then": then,
        "data-body": json.dumps(body) if body is not None else "",
        "aria-label": label,
    }
    shown = " ".join(f'{k}="{esc(v)}"' for k, v in attrs.items() if v)
    return f"<button {shown}>{esc(text)}</button>"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], id: str = "", empty: str = "none yet"
) -> str:
    """A table of already-escaped cells; ``empty`` (escaped here) when there are no rows."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    ident = f' id="{esc(id)}"' if id else ""
    head = f"<thead><tr>{head}</tr></thead>"
    return f'<table{ident} tabindex="0">{head}<tbody>{body}</tbody></table>'


def layout(title: str, active: str, body: str, script: str | None = None, data: Any = None) -> str:
    """A whole page: nav, ``body`` (escaped by the caller), optional page script and the data
    it starts from (JSON in a script tag, never keys)."""
    nav = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{esc(text)}</a>'
        for href, text in NAV
    )
    payload = ""
    if data is not None:
        text = json.dumps(data).replace("</", "<\\/")
        payload = f'<script type="application/json" id="page-data">{text}</script>'
    scripts = '<script src="/static/studio.js"></script>'
    if script:
        scripts += f'<script src="/static/{esc(script)}"></script>'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · chattune studio</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/studio.css"></head><body>'
        f'<header><b class="brand">chattune studio</b><nav>{nav}</nav></header>'
        f'<main><h1>{esc(title)}</h1><p id="page-result" role="status" aria-live="polite">'
        f"</p>{body}</main>{payload}{scripts}</body></html>"
    )
