"""Compute: what this machine has, and whether a model fits it for a fine-tuning method."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from chattune.catalog import sources
from chattune.compute import fit
from chattune.compute.estimate import Architecture, TrainingShape
from chattune.compute.targets import LOCAL, new_target, unknown
from chattune.store import workspace_store
from chattune.store.compute import TargetRecord
from chattune.workspace import Workspace


class ComputeAPI:
    """``client.compute``: targets (``create/list/get/delete``), this machine (``show``), and
    whether a model fits it (``check``)."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def create(self, name: str, type: str = "local", address: str | None = None) -> TargetRecord:
        """Define compute target ``name``; a ``ray`` target must answer at ``address``.

        >>> client.compute.create("ray-local", type="ray", address="http://127.0.0.1:8265")
        """
        target = new_target(name, type, address)
        if target.type == "ray":
            from chattune.compute import ray_jobs

            assert target.address is not None
            ray_jobs.check(target.address, strict=True)  # unreachable: one line, nothing stored
        workspace_store(self.ws).compute.insert(target)
        return self.get(name)

    def list(self) -> list[TargetRecord]:
        """``local`` and every target defined in the workspace."""
        return [LOCAL, *workspace_store(self.ws).compute.list()]

    def get(self, name: str) -> TargetRecord:
        """Target ``name``; an unknown name is an error that lists the known ones."""
        if name == LOCAL.name:
            return LOCAL
        found = workspace_store(self.ws).compute.get(name)
        if found is None:
            raise unknown(name, [t.name for t in self.list()])
        return found

    def delete(self, name: str) -> None:
        """Forget target ``name`` (jobs that ran there keep their records)."""
        self.get(name)
        if name == LOCAL.name:
            from chattune.errors import ValidationError

            raise ValidationError("compute target 'local' is built in", "nothing to delete")
        workspace_store(self.ws).compute.delete(name)

    def status(self, name: str) -> dict[str, Any]:
        """What the target has: this machine for ``local``, the cluster for ``ray``."""
        target = self.get(name)
        if target.type == "ray":
            from chattune.compute import ray_jobs

            assert target.address is not None
            return {"name": name, "type": "ray", **ray_jobs.check(target.address)}
        return self.show()

    def show(self) -> dict[str, Any]:
        """CPU cores, memory and GPUs of this machine (``local`` compute)."""
        import psutil

        info: dict[str, Any] = {
            "name": "local",
            "cpu_cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "memory_available_gb": round(psutil.virtual_memory().available / 2**30, 1),
            "gpus": [],
        }
        if fit.gpu_memory_gb():  # imports torch only where a GPU driver is installed
            import torch

            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                info["gpus"].append(
                    {
                        "index": i,
                        "name": props.name,
                        "memory_gb": round(props.total_memory / 2**30, 1),
                    }
                )
        info["kind"] = "local-gpu" if info["gpus"] else "local-cpu"
        return info

    def check(self, model: str, method: str = "lora", **params: Any) -> dict[str, Any]:
        """Estimate training memory for ``model`` and say whether this machine fits it.

        ``params`` are job parameters (``lora_r``, ``lora_target_modules``, ``precision``,
        ``per_device_train_batch_size``, ``max_seq_length``, ``optim``, ``processes``); the
        model card's ``model_specific_defaults``, then chattune's defaults, fill the rest —
        the same estimate the ``validate`` stage runs before a job trains.

        >>> client.compute.check("SmolLM2-135M-Instruct", "lora", lora_r=1_000_000)["ok"]
        False
        """
        ref = sources.parse(model)
        defaults = ref.card.model_specific_defaults if ref.card else {}
        known = TrainingShape.__dataclass_fields__
        unknown_params = sorted(set(params) - set(known) | ({"apply_lora"} & set(params)))
        if unknown_params:
            from chattune.errors import ValidationError

            raise ValidationError(
                f"compute check: parameter(s) {', '.join(unknown_params)} not known here",
                f"use method= and some of: {', '.join(k for k in known if k != 'apply_lora')}",
            )
        fields = {k: v for k, v in defaults.items() if k in known}
        shape = TrainingShape(**{**fields, **params, "apply_lora": method == "lora"})
        fitted = fit.check(Architecture.from_config(fit.model_config(model)), shape, fit.room())
        allowed = ref.card.finetune_compute_allow_list if ref.card else []
        reasons = []
        if allowed and fitted.room.kind not in allowed:
            reasons.append(
                f"{ref.display} allows fine-tuning on {allowed}, this machine is {fitted.room.kind}"
            )
        if not fitted.fits:
            reasons.append(f"needs {fitted.describe()}; this machine has {fitted.room}")
        return {
            "model": ref.display,
            "method": method,
            "parameters": asdict(shape),
            "compute": fitted.room.kind,
            "estimated_memory_gb": round(fitted.need_gb, 2),
            "seq_length": fitted.estimate.seq_length,
            "breakdown_gb": fitted.estimate.breakdown(),
            "trainable_parameters": fitted.estimate.trainable_parameters,
            "available_gb": fitted.room.gb,
            "ok": not reasons,
            "reasons": reasons,
            "would_fit": fitted.suggestions,
        }
