"""One training run of benchmarks/train_vs_trl.py, in its own process (its own peak RSS).

    .venv/bin/python benchmarks/train_run.py '{"model": "tiny-random-phi3", "lora": false,
        "max_len": 512, "batch": 8, "rows": 64, "variant": "chattune"}'

Prints one JSON line: tokens, trained_tokens, seconds, tokens_per_s, flops, peak_rss_mb,
train_loss, eval_loss.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

EVAL_ROWS, SEED = 16, 42


def conversations(split: str, n: int) -> list[list[dict]]:
    from chattune.catalog import assets
    from chattune.data.readers import load_conversations

    data = assets.fetch(["ultrachat-sample"])["ultrachat-sample"]
    return [c.messages for c in load_conversations(data, split=split)[:n]]


def learning_rate(spec: dict) -> float:
    return 2e-4 if spec["lora"] else 2e-5


def chattune_trainer(spec: dict, folder: str, work: Path) -> Any:
    """The finetune stage's trainer over the preprocessed rows, as the pipeline builds it."""
    from transformers import AutoTokenizer

    from chattune.train import finetune, preprocess
    from chattune.train.params import TrainParams
    from chattune.train.results import Hooks, ImportedModel

    path = work / "train.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in spec["convs"]))
    imported = ImportedModel(
        model_dir=folder, model=spec["model"], model_type="", context_length=spec["max_len"]
    )
    data = preprocess.run(imported, {"train": str(path)}, spec["max_len"], work / "pre", Hooks())
    params = TrainParams(
        per_device_train_batch_size=spec["batch"],
        learning_rate=learning_rate(spec),
        apply_lora=spec["lora"],
        lora_r=8,
        lora_alpha=16,
        precision="bf16" if spec["variant"].endswith("bf16") else "32",
        evaluation_strategy="no",
        logging_steps=10**6,
        save_steps=10**6,
        seed=SEED,
        max_steps=spec.get("steps", -1),
    )
    hooks = Hooks()
    model = finetune.load_trainable(folder, params, hooks)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chunked = spec["variant"] != "chattune plain loss"
    return finetune.build_trainer(model, tokenizer, data, params, work, hooks, chunked_loss=chunked)


def trl_trainer(spec: dict, folder: str, work: Path) -> Any:
    """TRL's SFTTrainer on the same conversations: defaults, packing, packing + bf16.

    Variant words: "packing", "bf16", "no ckpt" (gradient checkpointing off; TRL's default is
    on); ``spec["device"]`` "cuda" trains on the GPU."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    variant = spec["variant"]
    config = SFTConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=spec["batch"],
        learning_rate=learning_rate(spec),
        num_train_epochs=1,
        max_length=spec["max_len"],
        packing="packing" in variant,
        bf16="bf16" in variant,
        gradient_checkpointing="no ckpt" not in variant,  # TRL's default: on
        use_cpu=spec.get("device", "cpu") == "cpu",
        save_strategy="no",
        logging_steps=10**6,
        report_to="none",
        disable_tqdm=True,
        seed=SEED,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
        args=config,
        train_dataset=Dataset.from_list([{"messages": m} for m in spec["convs"]]),
        processing_class=AutoTokenizer.from_pretrained(folder),
        peft_config=lora if spec["lora"] else None,
    )
    return trainer


def count_tokens(trainer: Any) -> dict:
    """Counts what the trainer's batches hold: non-padding tokens, and trained ones."""
    counted = {"tokens": 0, "trained": 0, "batches": []}
    collate = trainer.data_collator

    def counting(features: list) -> Any:
        batch = collate(features)
        counted["trained"] += int((batch["labels"][:, 1:] != -100).sum())
        if isinstance(features[0], list):  # chattune's rows: packed examples
            counted["tokens"] += sum(len(e.input_ids) for row in features for e in row)
        elif batch.get("attention_mask") is not None:
            counted["tokens"] += int(batch["attention_mask"].sum())
        else:  # TRL padding-free packing: one row, no padding
            counted["tokens"] += batch["input_ids"].numel()
        counted["batches"].append(counted["tokens"])
        return batch

    trainer.data_collator = counting
    return counted


def main() -> None:
    import torch
    from transformers import AutoTokenizer

    from chattune.catalog import assets

    spec = json.loads(sys.argv[1])
    torch.manual_seed(SEED)
    folder = str(assets.fetch([spec["model"]])[spec["model"]])
    steps = spec.get("steps")
    rows = spec.get("rows") or spec["batch"] * (steps + 1) * max(1, spec["max_len"] // 300)
    spec["convs"] = conversations("train_sft", rows)
    with tempfile.TemporaryDirectory() as tmp:
        build = trl_trainer if spec["variant"].startswith("trl") else chattune_trainer
        trainer = build(spec, folder, Path(tmp))
        counted = count_tokens(trainer)
        result = trainer.train()
    seconds = result.metrics["train_runtime"]
    # a fixed number of steps (scaling): the batches those steps used, not one fetched ahead
    tokens = counted["batches"][steps - 1] if steps else counted["tokens"]
    params = sum(p.numel() for p in trainer.model.parameters())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    report = {
        "variant": spec["variant"],
        "tokens": tokens,
        "trained_tokens": counted["trained"],
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "seconds_per_step": seconds / max(result.global_step, 1),
        "flops": model_flops(trainer.model, spec, params, tokens),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else 0.0,
        "train_loss": result.training_loss,
        "eval_loss": float("nan") if steps else eval_loss(trainer.model, tokenizer, spec),
        "steps": result.global_step,
    }
    print(json.dumps(report))


def model_flops(model: Any, spec: dict, params: int, tokens: int) -> float:
    """Training FLOPs of ``tokens`` tokens: 6 x parameters per token for full fine-tuning,
    4 x for LoRA (forward, and the backward to the inputs only: the base is frozen), plus
    causal attention's, which has no parameters: 6 x layers x hidden x max length per token
    (PaLM's 12 x ..., halved for the causal mask; the same for LoRA, whose backward needs
    attention's input gradients in full)."""
    config = model.config
    attention = 6 * config.num_hidden_layers * config.hidden_size * spec["max_len"]
    return ((4 if spec["lora"] else 6) * params + attention) * tokens


def eval_loss(model: Any, tokenizer: Any, spec: dict) -> float:
    """chattune's score() on the same held-out conversations, whoever trained the model."""
    from chattune.train.scoring import score
    from chattune.train.template import tokenize_conversation

    held_out = conversations("test_sft", EVAL_ROWS)
    examples = [tokenize_conversation(tokenizer, m, spec["max_len"]) for m in held_out]
    return score(model, examples, 4)["loss"]


if __name__ == "__main__":
    main()
