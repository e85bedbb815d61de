"""``client.engines``: the serving engines a deployment may use, and installing them.

``transformers`` is built in; ``vllm`` runs from a virtual environment of its own (its
pinned torch and transformers differ from chattune's), created by ``install("vllm")``.

>>> client.engines.install("vllm")          # once; minutes, about 1 GB
>>> client.endpoints.create_deployment("my-ep", "fast", "m:1", engine="vllm")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chattune.errors import ValidationError

ENGINES = ("transformers", "vllm")


class EnginesAPI:
    """Serving engines: which are ready, and installing the ones that need it."""

    def list(self) -> list[dict[str, Any]]:
        """Each engine, whether it is installed, and where."""
        from chattune.serving import vllm_env as vllm

        venv = vllm.default_venv()
        return [
            {"name": "transformers", "installed": True, "where": "chattune's environment"},
            {"name": "vllm", "installed": vllm.is_installed(venv), "where": str(venv)},
        ]

    def install(self, name: str, progress: Callable[[str], None] = lambda _m: None) -> Path:
        """Install engine ``name`` (idempotent); the folder it lives in."""
        if name not in ENGINES:
            raise ValidationError(f"engine {name!r} is not known", f"use one of {ENGINES}")
        if name == "transformers":
            import transformers

            return Path(transformers.__file__).parent
        from chattune.serving import vllm_env as vllm

        return vllm.install(progress=progress)
