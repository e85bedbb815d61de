"""Compare 2-5 jobs: ``GET /api/jobs-compare?jobs=a,b`` (their curves, effective
parameters and evaluation metrics) and the ``/compare`` page that overlays them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chattune.errors import ValidationError
from chattune.studio.deps import client_of
from chattune.studio.html import layout, link

router = APIRouter()
CURVES = ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second")


def names_of(jobs: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in jobs.split(",") if n.strip()))
    if not 2 <= len(names) <= 5:
        raise ValidationError(
            f"jobs: compare takes 2 to 5 jobs, got {len(names)}",
            "tick 2-5 jobs on the Jobs page, or give ?jobs=a,b",
        )
    return names


def one_job(request: Request, name: str) -> dict[str, Any]:
    client = client_of(request)
    job = client.jobs.get(name)
    found: dict[str, Any] = {"history": {}, "final": {}, "report": None}
    if job.mlflow_run_id is not None:
        found = client.jobs.metrics(name)
    report = found.get("report") or {}
    return {
        "name": name,
        "status": job.status,
        "model": job.spec.get("model", ""),
        "parameters": {k: v.get("value") for k, v in job.parameters.items()},
        "history": {k: v for k, v in found["history"].items() if k in CURVES},
        "final": found["final"],
        "evaluation": {k: r.get("fine_tuned") for k, r in (report.get("metrics") or {}).items()},
        "base": {k: r.get("base") for k, r in (report.get("metrics") or {}).items()},
    }


@router.get("/api/jobs-compare")
def compare_api(request: Request, jobs: str) -> dict[str, Any]:
    """Each job's curves (loss, eval loss, lr, grad norm, tokens/s), parameters, metrics."""
    return {"jobs": [one_job(request, n) for n in names_of(jobs)], "curves": list(CURVES)}


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, jobs: str = "") -> str:
    names = names_of(jobs)
    for name in names:
        client_of(request).jobs.get(name)  # 404 for a job that does not exist
    chosen = ", ".join(link(f"/jobs/{n}", n) for n in names)
    body = (
        f"<p>jobs: {chosen}</p>"
        '<div class="row"><label>smoothing <input id="smoothing" type="range" min="0" '
        'max="0.95" step="0.05" value="0"></label> <output id="smoothing-value" '
        'for="smoothing">0</output></div>'
        '<div id="curves" aria-live="polite"><p class="muted">loading…</p></div>'
        '<h2>Parameters that differ</h2><label class="check"><input type="checkbox" '
        'id="all-params"> show every parameter</label><div id="param-diff"></div>'
        '<h2>Evaluation metrics</h2><div id="eval"></div>'
    )
    return layout("Compare jobs", "/", body, "compare.js", {"jobs": names})
