"""Stage `model_import`: the model as a local transformers folder (catalog, hub or folder)."""

from __future__ import annotations

from chattune.catalog import sources
from chattune.errors import ValidationError
from chattune.train.results import Hooks, ImportedModel


def run(model: str, hooks: Hooks) -> ImportedModel:
    """Resolve ``model`` to a folder with weights, tokenizer and chat template."""
    from transformers import AutoConfig, AutoTokenizer

    ref = sources.parse(model)
    folder = sources.materialize(ref)
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise ValidationError(
            f"model {ref.display} has no chat template", "use an instruct/chat model"
        )
    context = getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length
    hooks.log.info(
        "model %s from %s (%s, context %d)", ref.display, folder, config.model_type, context
    )
    return ImportedModel(
        model_dir=str(folder),
        model=ref.display,
        model_type=config.model_type,
        context_length=int(context),
    )
