"""The MLflow pyfunc chat model (saved "from code": this file travels inside the model folder).

Self-contained on purpose: it imports only mlflow, torch and transformers, so
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work without chattune installed.

Input, like ``POST /score`` (DESIGN.md §4): a conversation ``[msgs...]``, a list of
conversations ``[[msgs...], ...]``, ``{"messages": [...]}`` (one conversation or a list of
them), ``{"input_string": ...}`` or the whole ``{"input_data": {...}}`` request. Output: one
conversation → its assistant text (a string); several → the texts in order. Generation
params (``max_new_tokens``, ``temperature``, ``top_p``, ``do_sample``, ``stop``) come from
``params=`` (the model's signature declares them) or the request's ``parameters``.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

GENERATION_DEFAULTS: dict[str, Any] = {
    "max_new_tokens": 128,
    "temperature": 1.0,
    "top_p": 1.0,
    "do_sample": False,
    "stop": [],
}


class ChatModel(PythonModel):
    """Generate the assistant's next turn with the model's own chat template."""

    def load_context(self, context: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = context.artifacts["model"]
        self.tokenizer: Any = AutoTokenizer.from_pretrained(folder)
        self.model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    # The hint names the one type MLflow takes without deriving an input schema: the real
    # input is any shape `conversations` accepts (lists, dicts, or the DataFrame of `mlflow
    # models serve`), which no one schema describes. Without a hint MLflow warns on load.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> str | list[str]:
        convs, single, gen = conversations(model_input)
        # MLflow fills every declared param with its default: only a value that differs
        # from the default overrides the request's own `parameters`.
        gen.update({k: v for k, v in (params or {}).items() if v != GENERATION_DEFAULTS.get(k)})
        answers = [self._answer(messages, gen) for messages in convs]
        return answers[0] if single else answers

    def _answer(self, messages: list[dict[str, str]], gen: dict[str, Any]) -> str:
        import torch

        messages = _fold_system(self.tokenizer, messages)
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        do_sample = bool(gen.get("do_sample", False))
        kwargs: dict[str, Any] = {"max_new_tokens": int(gen.get("max_new_tokens", 128))}
        if do_sample:  # greedy takes no sampling knobs (transformers warns about them)
            kwargs |= {"temperature": float(gen["temperature"]), "top_p": float(gen["top_p"])}
        stop = gen.get("stop")
        if stop:
            kwargs |= {"stop_strings": [stop] if isinstance(stop, str) else list(stop)}
            kwargs["tokenizer"] = self.tokenizer
        with torch.inference_mode():
            out = self.model.generate(**ids, do_sample=do_sample, **kwargs)
        text = self.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        for s in [stop] if isinstance(stop, str) else stop or []:
            text = text.split(s)[0]  # the stop string itself is not part of the answer
        return text.strip()


def conversations(data: Any) -> tuple[list[list[dict[str, str]]], bool, dict[str, Any]]:
    """(conversations, whether one was given, request ``parameters``) of any accepted shape."""
    if hasattr(data, "to_dict"):  # pandas DataFrame from `mlflow models serve`
        records = data.to_dict(orient="records")
        data = records[0] if len(records) == 1 else [r.get("messages", r) for r in records]
    gen = dict(GENERATION_DEFAULTS)
    if isinstance(data, dict):
        data = data.get("input_data", data)
        gen.update(data.get("parameters") or {})
        if "messages" not in data and "input_string" not in data:
            raise ValueError("input must hold 'messages' or 'input_string' (a conversation)")
        data = data.get("messages", data.get("input_string"))
    if not isinstance(data, list) or not data:
        raise ValueError("input must be a conversation: a list of {role, content} messages")
    if isinstance(data[0], dict):
        return [list(data)], True, gen
    return [list(c) for c in data], len(data) == 1, gen


def _fold_system(tokenizer: Any, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    # Same rule as chattune.data.chat.prepare_messages, restated to stay self-contained.
    if len(messages) > 1 and messages[0]["role"] == "system" and messages[1]["role"] == "user":
        probe = [{"role": "system", "content": "probe-7f3a"}, {"role": "user", "content": "x"}]
        if "probe-7f3a" not in tokenizer.apply_chat_template(probe, tokenize=False):
            user = messages[0]["content"] + "\n\n" + messages[1]["content"]
            return [{"role": "user", "content": user}, *messages[2:]]
    return messages


mlflow.models.set_model(ChatModel())
