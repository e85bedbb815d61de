"""``ml_client.compute``: this machine as the platform's compute and its one size.

The platform's sizes (``Standard_NC6s_v3``...) have no local meaning, so none is mapped:
this machine has exactly one size, ``local-cpu`` (no GPU) or ``local-gpu``, which is what the
catalog's allow-list tags name. Any other size, for a compute or a deployment's
``instance_type``, is refused with the size this machine has.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from chattune.azureml.entities import AmlCompute, VmSize
from chattune.azureml.poller import Poller
from chattune.errors import ValidationError

if TYPE_CHECKING:
    from chattune.client import Client


class ComputeOperations:
    """``get``, ``list``, ``list_sizes``, ``begin_create_or_update`` over ``client.compute``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, name: str) -> AmlCompute:
        """Compute target ``name`` (``local`` is built in): its size is this machine's."""
        target = self._client.compute.get(name)
        size = machine_size(self._client).name if target.type == "local" else target.type
        return AmlCompute(name=target.name, size=size, provisioning_state="Succeeded")

    def list(self) -> builtins.list[AmlCompute]:
        return [self.get(t.name) for t in self._client.compute.list()]

    def list_sizes(
        self, location: str | None = None, compute_type: str | None = None
    ) -> builtins.list[VmSize]:
        """This machine's one size (``location`` and ``compute_type`` have no local meaning)."""
        return [machine_size(self._client)]

    def begin_create_or_update(self, compute: AmlCompute) -> Poller:
        """Name this machine ``compute.name`` (a local target); its size must be this
        machine's."""
        check_size(self._client, compute.size or "", [], f"compute {compute.name}: size")
        self._client.compute.create(compute.name, type="local")
        return Poller(lambda: self.get(compute.name))


def machine_size(client: Client) -> VmSize:
    """This machine as a compute size: ``local-gpu`` with its GPUs, else ``local-cpu``."""
    info = client.compute.show()
    gpus = len(info["gpus"])
    return VmSize(info["kind"], gpus, int(info["cpu_cores"] or 1), info["memory_gb"])


def check_size(client: Client, size: str, allowed: list[str], what: str) -> VmSize:
    """``size`` must be this machine's and (when the model has an allow-list) allowed."""
    here = machine_size(client)
    if size.lower() != here.name:
        raise ValidationError(
            f"{what} {size!r} is not a size of this machine (available: {here.name})",
            f"use {here.name!r}; the platform's sizes have no local meaning",
        )
    if allowed and here.name not in [a.lower() for a in allowed]:
        raise ValidationError(
            f"{what} {here.name!r} is not in the model's allow-list {allowed}",
            "pick a model whose allow-list has this machine's size (`chattune models catalog`)",
        )
    return here
