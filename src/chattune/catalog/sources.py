"""Resolve a model reference to a local transformers folder.

A reference is a catalog name (``NAME``, ``NAME@label``, ``NAME:version``), a model this
workspace registered (the same forms, :mod:`chattune.catalog.registered`), ``hf://org/id``
(downloaded through the hub cache, the real path users with the hub take), or a local folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chattune.catalog.assets import require
from chattune.catalog.cards import ModelCard, get_card
from chattune.errors import NotFoundError


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    text: str
    card: ModelCard | None
    hub_id: str | None
    folder: Path | None

    @property
    def display(self) -> str:
        return f"{self.card.name}:{self.card.version}" if self.card else self.text


def parse(ref: str) -> ModelRef:
    """Parse ``ref`` without downloading anything (fast; used by spec validation)."""
    if ref.startswith("hf://"):
        return ModelRef(ref, None, ref.removeprefix("hf://"), None)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise NotFoundError(
                f"model folder {path} has no config.json",
                "point to a transformers model folder (save_pretrained output)",
            )
        return ModelRef(ref, None, None, path.resolve())
    name, label, version = ref, None, None
    if "@" in ref:
        name, label = ref.split("@", 1)
    elif ":" in ref:
        name, version = ref.split(":", 1)
    try:
        card = get_card(name, label=label, version=version)
    except NotFoundError:
        from chattune.catalog.registered import registered_folder

        folder = registered_folder(ref)  # a version this workspace registered (an SFT model)
        if folder is None:
            raise
        return ModelRef(ref, None, None, folder)
    hub_id = card.source.removeprefix("hf://") if card.source.startswith("hf://") else None
    return ModelRef(ref, card, hub_id, None)


def materialize(ref: ModelRef) -> Path:
    """A local folder holding the model's weights, tokenizer and chat template."""
    if ref.folder is not None:
        return ref.folder
    if ref.card is not None and ref.card.source.startswith("offline:"):
        return require(ref.card.source.removeprefix("offline:"))
    assert ref.hub_id is not None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref.hub_id))
    except Exception as exc:
        raise NotFoundError(
            f"could not download {ref.hub_id} from the model hub: {type(exc).__name__}",
            "check network access and HF_TOKEN, or use an offline model "
            "(SmolLM2-135M-Instruct, tiny-random-phi3) or a local folder",
        ) from exc
