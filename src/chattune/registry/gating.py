"""``models compare`` and ``models promote`` over the registry: which folders to score, on
which data, where the report goes, and the label move with its history."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from chattune.errors import ChattuneError, ConflictError, ValidationError
from chattune.registry.compare import Candidate, Comparison, log_to_mlflow, write_report
from chattune.registry.compare import compare as run_compare
from chattune.registry.lineage import Lineage
from chattune.registry.promote import DEFAULT_GATES, Promotion, judge, parse_gate
from chattune.store.models import RegisteredModel
from chattune.store.resources import ModelEventStore

ModelsAPI = Any
"""``chattune.registry.api.ModelsAPI`` (not imported: it imports this module)."""


def candidate(api: ModelsAPI, ref: str) -> tuple[Candidate, RegisteredModel]:
    model = api.resolve(ref)
    return Candidate(model.ref, str(api.resolve_for_serving(model.ref)[1])), model


def base_candidate(model: RegisteredModel) -> Candidate:
    """The base model ``model`` was fine-tuned from, as a transformers folder."""
    from chattune.catalog import sources

    if not model.base_model:
        raise ValidationError(
            f"model {model.ref} records no base model", "compare it with another version"
        )
    folder = sources.materialize(sources.parse(model.base_model))
    return Candidate(f"base {model.base_model}", str(folder))


def held_out(model: RegisteredModel, data: str | Path | None) -> str:
    """``data``, else the test split of the job that trained ``model``."""
    if data is not None:
        if not Path(data).exists():
            raise ValidationError(f"--data {data}: file not found", "pass a chat JSONL file")
        return str(data)
    tests = [f.path for f in Lineage.model_validate(model.lineage).files() if f.split == "test"]
    if not tests or not tests[0] or not Path(tests[0]).exists():
        raise ValidationError(
            f"model {model.ref}: its job's test data is not on this machine",
            "pass held-out conversations with --data FILE",
        )
    return str(tests[0])


def seq_length(model: RegisteredModel) -> int:
    """The job's max_seq_length (its effective parameters), else 512."""
    entry = Lineage.model_validate(model.lineage).parameters.get("max_seq_length")
    value = entry.get("value") if isinstance(entry, dict) else entry
    return int(value) if isinstance(value, int) and value > 0 else 512


def compare(
    api: ModelsAPI, a: str, b: str, data: str | Path | None, samples: int, mlflow: bool
) -> Comparison:
    first, model = candidate(api, a)
    second = base_candidate(model) if b == "base" else candidate(api, b)[0]
    result = run_compare([first, second], held_out(model, data), samples, seq_length(model))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = api.ws.root / "comparisons" / f"{_safe(first.ref)}-vs-{_safe(second.ref)}-{stamp}"
    write_report(result, folder)
    if mlflow:
        uri, root = api.ws.mlflow_uri, api.ws.artifact_root
        result.mlflow_run_id = log_to_mlflow(result, folder, uri, root)
    return result


def promote(
    api: ModelsAPI,
    ref: str,
    label: str,
    gates: list[str] | None,
    force: bool,
    data: str | Path | None,
) -> Promotion:
    chosen = [parse_gate(g) for g in (gates or DEFAULT_GATES)]
    first, model = candidate(api, ref)
    holder = next((m for m in api.list(model.name) if label in m.labels), None)
    holder = None if holder is None or holder.version == model.version else holder
    models: dict[str, Candidate] = {"candidate": first}
    if holder is not None and any(g.other == "current" for g in chosen):
        models["current"] = candidate(api, holder.ref)[0]
    if any(g.other == "base" for g in chosen):
        models["base"] = base_candidate(model)
    samples = 3 if any(g.needs_generation for g in chosen) else 0
    found = run_compare(list(models.values()), held_out(model, data), samples, seq_length(model))
    metrics = {role: found.metrics[c.ref] for role, c in models.items()}
    verdicts = [judge(g, metrics) for g in chosen]
    result = Promotion(
        model.ref,
        label,
        False,
        False,
        verdicts,
        metrics,
        holder.ref if holder else None,
        models["base"].ref if "base" in models else None,
    )
    return _apply(api, model, result, force)


def _apply(api: ModelsAPI, model: RegisteredModel, result: Promotion, force: bool) -> Promotion:
    """Move the label (and record why), or refuse in one line."""
    events = ModelEventStore(api.store.db)
    if result.failed() and not force:
        raise ConflictError(
            f"not promoting {model.ref} to {result.label!r}: {result.reason()}",
            "train a better version, change --gate, or pass --force (recorded as a warning)",
        )
    api.label(model.name, model.version, result.label)
    result.promoted = True
    if result.failed():
        result.forced = True
        message = f"forced to {result.label!r} although {result.reason()}"
        events.add(model.name, model.version, "warning", message)
        _mlflow_tag(api, model, "chattune.promotion_warning", message)
    else:
        events.add(model.name, model.version, "promoted", f"{result.label}: {result.reason()}")
    return result


def _mlflow_tag(api: ModelsAPI, model: RegisteredModel, key: str, value: str) -> None:
    current = api.store.models.get(model.name, model.version)
    if current is not None and current.mlflow_version:
        # The workspace's record is the history; MLflow only mirrors it.
        with contextlib.suppress(ChattuneError):
            api.mlflow.set_tag(model.name, current.mlflow_version, key, value[:5000])


def _safe(ref: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in ref)[:80]
