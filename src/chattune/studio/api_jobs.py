"""Jobs JSON routes: list, one job with its progress, log tail, metrics, cancel/resume, and
the new-job form's parameters, YAML preview and submit (the SDK validates)."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request

from chattune.errors import ChattuneError
from chattune.studio.deps import client_of, field_of, plain
from chattune.studio.live import eta, usage
from chattune.studio.paths import data_path, folder_path, looks_like_path

router = APIRouter(prefix="/api/jobs")
# The reference parameters the form shows first (the rest stay at their defaults).
FORM_PARAMETERS = (
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_seq_length",
    "packing",
    "logging_steps",
    "evaluation_strategy",
    "eval_steps",
    "precision",
    "apply_lora",
    "lora_r",
    "lora_alpha",
    "generation_eval_rows",
    "generation_max_new_tokens",
    "beta",  # method: dpo
    "loss_type",
    "max_prompt_length",
)


def job_summary(job: Any) -> dict[str, Any]:
    """A list row: name, status, model, data, duration, current stage."""
    end = job.finished_at
    took = (end - job.started_at) if (end and job.started_at) else None
    return {
        "name": job.name,
        "status": job.status,
        "model": job.spec.get("model", ""),
        "data": (job.spec.get("data") or {}).get("train", ""),
        "created_at": job.created_at,
        "duration": took,
        "stage": next((s.name for s in job.stages if s.status == "running"), ""),
        "queue_position": job.queue_position,
    }


def live_progress(client: Any, job: Any) -> dict[str, Any]:
    """The job's published progress with its fraction and ETA (running jobs only)."""
    if job.done:
        return {}
    running = next((s for s in job.stages if s.status == "running"), None)
    found = dict(client.jobs.progress(job.name))
    if running is not None and found.get("stage") not in (None, running.name):
        found = {"stage": running.name}  # the last stage's numbers: not this one's
    return eta(found, running.started_at if running else None)


@router.get("")
def list_jobs(request: Request) -> list[dict[str, Any]]:
    """Every job (the jobs page polls it): a row each, with live progress when running."""
    client = client_of(request)
    return [{**job_summary(j), "progress": live_progress(client, j)} for j in client.jobs.list()]


@router.get("/{name}")
def get_job(request: Request, name: str) -> dict[str, Any]:
    client = client_of(request)
    job = client.jobs.get(name)
    data: dict[str, Any] = plain(job)
    data["done"] = job.done
    data["progress"] = live_progress(client, job)
    data["resources"] = None if job.done or job.compute != "local" else usage(job.pid)
    data["stages"] = [
        {**plain(s), "duration": s.duration, "reused": bool(s.note and "reuse" in s.note)}
        for s in job.stages
    ]
    return data


@router.get("/{name}/log")
def job_log(request: Request, name: str, offset: int = 0) -> dict[str, Any]:
    """The log from byte ``offset`` on (the page keeps the offset and polls)."""
    text = client_of(request).jobs.logs(name).encode()
    if offset > len(text):
        offset = 0  # the log was replaced (a resume): start over
    return {"text": text[offset:].decode(errors="replace"), "offset": len(text)}


@router.get("/{name}/metrics")
def job_metrics(request: Request, name: str) -> dict[str, Any]:
    """Loss history and the evaluation report (empty until the job's MLflow run exists)."""
    client = client_of(request)
    if client.jobs.get(name).mlflow_run_id is None:
        return {"final": {}, "history": {}, "report": None}
    found = client.jobs.metrics(name)
    return {k: found[k] for k in ("final", "history", "report")}


@router.post("/{name}/cancel")
def cancel_job(request: Request, name: str) -> dict[str, Any]:
    return job_summary(client_of(request).jobs.cancel(name))


@router.post("/{name}/resume")
def resume_job(request: Request, name: str) -> dict[str, Any]:
    return job_summary(client_of(request).jobs.resume(name))


def fits(client: Any, model: str) -> dict[str, Any]:
    """``compute check`` of ``model`` with its defaults: does it fit this machine?"""
    try:
        found = client.compute.check(model)
    except ChattuneError as exc:
        return {"ok": False, "reasons": [exc.message]}
    keys = ("ok", "compute", "estimated_memory_gb", "available_gb", "reasons")
    return {k: found.get(k) for k in keys}


def machine_fit(request: Request) -> dict[str, Any]:
    """Each catalog model's fit (computed once per studio) and the largest that fits."""
    cached: dict[str, Any] | None = getattr(request.app.state, "machine_fit", None)
    if cached is None:
        client = client_of(request)
        cards = sorted(client.models.catalog(), key=lambda c: c.num_parameters, reverse=True)
        checks = {c.name: fits(client, c.name) for c in cards}
        best = next((c.name for c in cards if checks[c.name]["ok"]), None)
        cached = {"checks": checks, "recommended": best or (cards[-1].name if cards else "")}
        request.app.state.machine_fit = cached
    return cached


@router.get("-form/parameters")
def form_parameters(request: Request) -> dict[str, Any]:
    """Every parameter (the reference ones first), each model's own defaults, and the
    model that fits this machine (the form's default)."""
    client = client_of(request)
    defaults = {c.name: c.model_specific_defaults for c in client.models.catalog()}
    return {
        "shown": list(FORM_PARAMETERS),
        "parameters": client.jobs.parameters(),
        "model_defaults": defaults,
        **machine_fit(request),
    }


def spec_of(body: dict[str, Any]) -> dict[str, Any]:
    """The spec a form body describes: empty fields left out (their defaults apply)."""
    spec: dict[str, Any] = {k: v for k, v in body.items() if v not in (None, "", {})}
    for group in ("data", "parameters"):
        values = {k: v for k, v in (body.get(group) or {}).items() if v not in (None, "")}
        if values:
            spec[group] = values
        else:
            spec.pop(group, None)
    return spec


def check_paths(request: Request, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with its data paths (and a local model folder) checked to lie inside the
    studio's data folders and made absolute; outside or missing: the same 404."""
    data = spec.get("data")
    if isinstance(data, dict):
        for split, given in data.items():
            if isinstance(given, str):
                data[split] = str(data_path(request, given, f"data.{split}"))
    model = spec.get("model")
    if isinstance(model, str) and looks_like_path(model):
        spec["model"] = str(folder_path(request, model, "model"))
    return spec


@router.post("-form/preview")
def preview(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The YAML the form would submit, and what the SDK says about it (no job started)."""
    spec = spec_of(body)
    text = yaml.safe_dump(spec, sort_keys=False)
    try:
        plan = client_of(request).jobs.plan(check_paths(request, dict(spec)))
    except ChattuneError as exc:
        return {
            "yaml": text,
            "error": exc.message,
            "hint": exc.hint,
            "field": field_of(exc.message),
        }
    return {"yaml": text, "error": None, "parameters": plan.parameters}


@router.post("")
def create_job(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Validate and start the job; a bad field answers 422 naming it (the CLI's message)."""
    spec = check_paths(request, spec_of(body))
    return job_summary(client_of(request).jobs.create(spec))
