"""Compute: what this machine has, and whether a model fits it for a fine-tuning method."""

from __future__ import annotations

import os
from typing import Any

from chattune.catalog import sources
from chattune.compute.targets import LOCAL, new_target, unknown
from chattune.store import workspace_store
from chattune.store.compute import TargetRecord
from chattune.workspace import Workspace

# Bytes per parameter while training: weights (fp32) + grads + two Adam moments when the
# parameter trains; LoRA trains ~1% of them. Activations are bounded separately.
_BYTES_FULL = 16
_BYTES_FROZEN = 4


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
        import torch

        if torch.cuda.is_available():
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

    def check(self, model: str, method: str = "lora") -> dict[str, Any]:
        """Estimate training memory for ``model`` and say whether this machine fits it."""
        ref = sources.parse(model)
        hw = self.show()
        params = ref.card.num_parameters if ref.card else 0
        per_param = _BYTES_FROZEN + (0.01 * _BYTES_FULL if method == "lora" else _BYTES_FULL)
        need_gb = round(params * per_param / 2**30 * 1.2, 2)  # 20% for activations and buffers
        allowed = ref.card.tags.get("finetune_compute_allow_list", []) if ref.card else []
        target = hw["kind"]
        room = max((g["memory_gb"] for g in hw["gpus"]), default=hw["memory_available_gb"])
        fits = need_gb <= room if params else None
        reasons = []
        if allowed and target not in allowed:  # type: ignore[operator]
            reasons.append(
                f"{ref.display} allows fine-tuning on {allowed}, this machine is {target}"
            )
        if fits is False:
            reasons.append(f"needs ~{need_gb} GB, {room} GB available")
        return {
            "model": ref.display,
            "method": method,
            "compute": target,
            "estimated_memory_gb": need_gb or None,
            "available_gb": room,
            "ok": not reasons,
            "reasons": reasons,
        }
