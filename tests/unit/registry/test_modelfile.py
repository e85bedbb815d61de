"""Ollama Modelfile fidelity: the TEMPLATE (Go text/template) and SYSTEM written by
`models export --format gguf` give, for every conversation, exactly the prompt training
built with the chat template (`prepare_messages` + `apply_chat_template`): SmolLM2's default
system prompt, Phi-3's system message folded into the first user turn."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chattune.registry.export import modelfile, ollama_prompt, training_prompt
from chattune.registry.gotemplate import render

CONVERSATIONS = [
    [("user", "Hello there")],
    [("system", "You are terse."), ("user", "Hello there")],
    [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")],
    [
        ("system", "Answer in French."),
        ("user", "Hi"),
        ("assistant", "Salut"),
        ("user", "How are you?"),
        ("assistant", "Bien."),
        ("user", "Bye"),
    ],
    [("system", "Be brief."), ("user", "Write a haiku"), ("assistant", "Waves")],  # continue
    [("user", "Hi"), ("system", "Now be formal."), ("user", "Bye")],  # system not first
    [("user", 'Braces {{ .Content }} and "quotes"\nnew line')],
]
# What llama.cpp's converter writes as tokenizer.ggml.add_bos_token for each model
# (checked on the real GGUFs by test_export.py).
MODELS = {"tiny-random-phi3": True, "SmolLM2-135M-Instruct": False}


def parse_modelfile(text: str) -> tuple[str, str | None]:
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M)
    system = re.search(r'^SYSTEM """(.*?)"""$', text, re.S | re.M)
    assert template is not None
    return template.group(1), system.group(1) if system else None


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request: pytest.FixtureRequest) -> tuple[str, Any, str, str | None]:
    """(name, tokenizer, TEMPLATE, SYSTEM) of the Modelfile export writes for the model."""
    from transformers import AutoTokenizer

    from chattune.catalog import assets

    folder = assets.fetch([request.param])[request.param]
    template, system = parse_modelfile(modelfile(folder, "m.gguf", MODELS[request.param]))
    return request.param, AutoTokenizer.from_pretrained(folder), template, system


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: "-".join(r for r, _ in c))
def test_modelfile_renders_what_training_rendered(
    model: tuple[str, Any, str, str | None], conversation: list[tuple[str, str]]
) -> None:
    name, tok, template, system = model
    got = ollama_prompt(tok, template, system, MODELS[name], conversation)
    assert got == training_prompt(tok, conversation)


def test_smollm2_default_system_and_phi3_folding_are_visible(
    model: tuple[str, Any, str, str | None],
) -> None:
    name, tok, template, system = model
    with_system = [("system", "Be brief."), ("user", "Hi")]
    prompt = ollama_prompt(tok, template, system, MODELS[name], with_system)
    if name == "SmolLM2-135M-Instruct":
        assert system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
        assert system in ollama_prompt(tok, template, system, False, [("user", "Hi")])
        assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    else:
        assert system is None
        assert "<|user|>\nBe brief.\n\nHi<|end|>\n<|assistant|>\n" in prompt


# The Go template renderer the check relies on, against what Go's text/template does.
@pytest.mark.parametrize(
    ("template", "data", "want"),
    [
        ("a{{ .X }}b", {"X": "1"}, "a1b"),
        ("a  {{- .X -}}  \n b", {"X": "1"}, "a1b"),
        ('{{ if eq .X "u" }}U{{ else if eq .X "a" }}A{{ else }}O{{ end }}', {"X": "a"}, "A"),
        ('{{ if eq .X "u" }}U{{ else if eq .X "a" }}A{{ else }}O{{ end }}', {"X": "s"}, "O"),
        ("{{ range $i, $m := .L }}{{ $i }}={{ $m.V }};{{ end }}", {"L": [{"V": "x"}]}, "0=x;"),
        ("{{ range .L }}{{ .V }}{{ end }}", {"L": [{"V": "x"}, {"V": "y"}]}, "xy"),
        ("{{ range .L }}x{{ else }}empty{{ end }}", {"L": []}, "empty"),
        # assignment inside range changes the outer variable (Go >= 1.11)
        (
            "{{ $s := 0 }}{{ range .L }}{{ $s = .V }}{{ end }}{{ $s }}",
            {"L": [{"V": 1}, {"V": 2}]},
            "2",
        ),
        # a := inside a block is scoped to it
        ('{{ $s := "o" }}{{ if true }}{{ $s := "i" }}{{ $s }}{{ end }}{{ $s }}', {}, "io"),
        (
            "{{ and 1 0 2 }}|{{ or 0 3 }}|{{ not 0 }}|{{ and .A .B }}",
            {"A": "", "B": "x"},
            "0|3|true|",
        ),
        (
            "{{ len (slice .L 1) }}{{ if eq (len (slice $.L 2)) 1 }}last{{ end }}",
            {"L": [1, 2, 3]},
            "2last",
        ),
        ('{{ "{{" }}x}}', {}, "{{x}}"),
    ],
)
def test_go_template_subset(template: str, data: dict, want: str) -> None:
    assert render(template, data) == want


@pytest.mark.parametrize(
    "bad", ["{{ if .X }}open", "{{ end }}", "{{ with .X }}{{ end }}", "{{ printf .X }}"]
)
def test_go_template_refuses_what_it_does_not_know(bad: str) -> None:
    with pytest.raises(ValueError):
        render(bad, {"X": "1"})
