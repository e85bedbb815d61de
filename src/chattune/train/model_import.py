"""Stage `model_import`: the model as a local transformers folder (catalog, hub or folder)."""

from __future__ import annotations

from typing import Any

from chattune.catalog import sources
from chattune.jobs.context import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """Resolve ``spec.model`` to a folder with weights, tokenizer and chat template."""
    from transformers import AutoConfig, AutoTokenizer

    ref = sources.parse(ctx.spec.model)
    folder = sources.materialize(ref)
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        from chattune.errors import ValidationError

        raise ValidationError(
            f"model {ref.display} has no chat template", "use an instruct/chat model"
        )
    context = getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length
    ctx.log.info(
        "model %s from %s (%s, context %d)", ref.display, folder, config.model_type, context
    )
    return {
        "model_dir": str(folder),
        "model": ref.display,
        "model_type": config.model_type,
        "context_length": int(context),
    }
