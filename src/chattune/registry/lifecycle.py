"""What ties a registered version to the rest: the deployments serving it, its lineage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chattune.errors import ConflictError, NotFoundError
from chattune.registry.lineage import Lineage, base_model_info
from chattune.store import Store
from chattune.store.models import RegisteredModel


def serving(store: Store, ref: str) -> list[tuple[str, str]]:
    """(endpoint, deployment) pairs whose deployment serves model version ``ref``."""
    return [
        (endpoint.name, deployment.name)
        for endpoint in store.endpoints.list()
        for deployment in store.endpoints.deployments(endpoint.name)
        if deployment.model == ref and deployment.status != "deleting"
    ]


def check_not_served(store: Store, model: RegisteredModel) -> None:
    """Refuse to delete a version a deployment serves, naming endpoint and deployment."""
    users = serving(store, model.ref)
    if users:
        where = ", ".join(f"deployment {d!r} of endpoint {e!r}" for e, d in users)
        first_e, first_d = users[0]
        raise ConflictError(
            f"model {model.ref} is served by {where}",
            f"delete the deployment first: `chattune deployments delete {first_d} "
            f"--endpoint {first_e}`",
        )


def model_lineage(model: RegisteredModel) -> dict[str, Any]:
    """One version's lineage, in the order a reader follows it."""
    lineage = Lineage.model_validate(model.lineage)
    base = lineage.base or base_model_info(model.base_model or "")
    data = [f.model_dump() for f in lineage.files()]
    return {
        "model": {
            "ref": model.ref,
            "labels": model.labels,
            "archived": model.archived,
            "mlflow_version": model.mlflow_version,
            "path": model.path,
        },
        "job": {"name": model.job, "mlflow_run_id": lineage.mlflow_run_id},
        "base_model": base,
        "data": data,
        "parameters": lineage.parameters,
        "metrics": lineage.metrics,
    }


def endpoint_lineage(
    store: Store, endpoint: str, resolve: Callable[[str], RegisteredModel]
) -> dict[str, Any]:
    """``endpoint`` → each deployment (traffic %) → its model version's lineage."""
    record = store.endpoints.get(endpoint)
    if record is None:
        raise NotFoundError(
            f"unknown endpoint {endpoint!r}", "list endpoints with `chattune endpoints list`"
        )
    deployments = []
    for d in store.endpoints.deployments(endpoint):
        entry: dict[str, Any] = {
            "deployment": d.name,
            "traffic": record.traffic.get(d.name, 0),
            "status": d.status,
        }
        try:
            entry |= model_lineage(resolve(d.model))
        except NotFoundError:
            entry["model"] = {"ref": d.model, "missing": True}
        deployments.append(entry)
    return {"endpoint": endpoint, "deployments": deployments}


def move_latest(store: Store, name: str) -> None:
    """After a delete, ``latest`` goes to the newest ready version left (not archived)."""
    left = store.models.list(name)
    if left and not any("latest" in m.labels for m in left):
        store.models.set_label(name, left[0].version, "latest")
