"""``ml_client.jobs``: submit a ``@pipeline`` job as one chattune job, follow and read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chattune.azureml.compute import check_size
from chattune.azureml.entities import Job, PipelineJob
from chattune.azureml.pipelines import OUTPUTS, display_name, job_spec
from chattune.azureml.poller import Poller
from chattune.errors import RuntimeFailure, ValidationError

if TYPE_CHECKING:
    from chattune.client import Client

NEEDS_GPU = {
    "apply_deepspeed": lambda v: v is True,
    "number_of_gpu_to_use_finetuning": lambda v: bool(v),
    "precision": lambda v: v == "16",
}
"""Parameters a machine without a GPU cannot honour, and which of their values need one."""


class JobOperations:
    """``create_or_update``, ``stream``, ``get``, ``list``, ``begin_cancel``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create_or_update(
        self, job: PipelineJob, experiment_name: str | None = None, **kwargs: Any
    ) -> Job:
        """Check the job here (compute, allow-list, what this machine can honour), then start
        it; anything it cannot run fails now, in one line, never later."""
        if not isinstance(job, PipelineJob):
            raise ValidationError(
                f"jobs.create_or_update: expected a PipelineJob, got {type(job).__name__}",
                "build it with a @pipeline function",
            )
        spec = job_spec(job, set(self._client.jobs.parameters()))
        experiment = experiment_name or job.experiment_name
        overrides = {"experiment": experiment} if experiment else None
        self._check(spec, overrides)
        return _view(self._client.jobs.create(spec, overrides=overrides))

    def _check(self, spec: dict[str, Any], overrides: dict[str, Any] | None) -> None:
        target = self._client.compute.get(spec["compute"])  # unknown: names the known ones
        plan = self._client.jobs.plan(spec, overrides=overrides)  # parameters checked here
        if target.type != "local":
            return
        name, _, version = plan.model.partition(":")
        allowed: list[str] = []
        if self._client.models.is_catalog(name):
            card = self._client.models.get(name, version=version or None)
            allowed = list(card.tags.get("finetune_compute_allow_list", []))  # type: ignore[call-overload]
        here = self._client.compute.show()["kind"]
        check_size(self._client, here, allowed, f"compute {target.name}: size")
        if here == "local-cpu":
            values = {k: v["value"] for k, v in plan.parameters.items()}
            wants = [f"{k}={values[k]!r}" for k, needs in NEEDS_GPU.items() if needs(values[k])]
            if wants:
                raise ValidationError(
                    f"{', '.join(wants)}: the local pipeline cannot honour this on compute "
                    f"{target.name} (local-cpu, no GPU)",
                    "set apply_deepspeed='false', number_of_gpu_to_use_finetuning=0 and "
                    "precision bf16 or 32 (several CPU processes: processes=N)",
                )

    def stream(self, name: str) -> None:
        """Print the job's log until it ends; raise if it did not complete (as the platform
        does)."""
        final = self._client.jobs.stream(name)
        if final.status != "completed":
            raise RuntimeFailure(
                f"job {name} {final.status}: {final.error or 'see its log'}",
                f"see `chattune jobs show {name}`; resume with `chattune jobs resume {name}`",
            )

    def get(self, name: str) -> Job:
        return _view(self._client.jobs.get(name))

    def list(self) -> list[Job]:
        return [_view(j) for j in self._client.jobs.list()]

    def begin_cancel(self, name: str) -> Poller:
        return Poller(lambda: _view(self._client.jobs.cancel(name)))


def _view(job: Any) -> Job:
    """A chattune job as the platform's job: status words capitalized, the model outputs."""
    outputs: dict[str, str] = {}
    package = next((s for s in job.stages if s.name == "package"), None)
    if package is not None and package.status == "completed":
        outputs = {k: str(package.outputs[k]) for k in OUTPUTS if k in package.outputs}
    return Job(
        name=job.name,
        display_name=display_name(str(job.spec.get("description") or job.name)),
        status=job.status.capitalize(),
        experiment_name=job.experiment,
        outputs=outputs,
        error=job.error,
    )
