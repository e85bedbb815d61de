"""chattune: fine-tune chat models and serve them, on your own machines.

>>> from chattune import Client
>>> client = Client()                      # ./.chattune or $CHATTUNE_WORKSPACE
>>> client.models.catalog()[0].name
'Phi-3-mini-4k-instruct'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chattune.workspace import private_environment

# Before any heavy import (MLflow, matplotlib, torch) reads them: telemetry off, caches
# under the user cache dir (CHATTUNE_TELEMETRY=1 turns telemetry back on).
private_environment()

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from chattune.client import Client


def __getattr__(name: str) -> Any:
    # Keep `import chattune` light: the CLI's --help must not pay for the SDK's imports.
    if name == "Client":
        from chattune.client import Client

        return Client
    raise AttributeError(name)
