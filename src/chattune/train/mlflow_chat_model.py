"""The MLflow pyfunc chat model (saved "from code": this file travels inside the model folder).

Self-contained on purpose: it imports only mlflow, torch and transformers, so
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work without chattune installed.
Input is the /score request's ``input_data`` (or a list of conversations); output is one
assistant text per conversation.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class ChatModel(PythonModel):
    """Generate the assistant's next turn with the model's own chat template."""

    def load_context(self, context: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = context.artifacts["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    def predict(
        self, context: Any, model_input: Any, params: dict[str, Any] | None = None
    ) -> list[str]:
        import torch

        data = model_input
        if hasattr(data, "to_dict"):  # pandas DataFrame from `mlflow models serve`
            data = data.to_dict(orient="records")[0]
        if isinstance(data, dict) and "input_data" in data:
            data = data["input_data"]
        gen = dict((data.get("parameters") or {}) if isinstance(data, dict) else {})
        gen.update(params or {})
        convs = data["input_string"] if isinstance(data, dict) else data
        if convs and isinstance(convs[0], dict):
            convs = [convs]
        answers = []
        for messages in convs:
            messages = _fold_system(self.tokenizer, list(messages))
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.inference_mode():
                out = self.model.generate(
                    **ids,
                    max_new_tokens=int(gen.get("max_new_tokens", 128)),
                    do_sample=bool(gen.get("do_sample", False)),
                    temperature=float(gen.get("temperature", 1.0)),
                    top_p=float(gen.get("top_p", 1.0)),
                )
            new = out[0, ids["input_ids"].shape[1] :]
            answers.append(self.tokenizer.decode(new, skip_special_tokens=True).strip())
        return answers


def _fold_system(tokenizer: Any, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    # Same rule as chattune.data.chat.prepare_messages, restated to stay self-contained.
    if len(messages) > 1 and messages[0]["role"] == "system" and messages[1]["role"] == "user":
        probe = [{"role": "system", "content": "probe-7f3a"}, {"role": "user", "content": "x"}]
        if "probe-7f3a" not in tokenizer.apply_chat_template(probe, tokenize=False):
            user = messages[0]["content"] + "\n\n" + messages[1]["content"]
            return [{"role": "user", "content": user}, *messages[2:]]
    return messages


mlflow.models.set_model(ChatModel())
