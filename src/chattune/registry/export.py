"""``models export``: a registered version as a plain folder, a PEFT adapter, or GGUF.

- ``merged``: the transformers folder a deployment serves (safetensors, tokenizer, template).
- ``adapter``: the job's LoRA adapter, its base recorded by hub id / catalog name.
- ``gguf``: llama.cpp's own converter (from the llama-cpp-python sdist the offline assets
  come from) writes ``model-<type>.gguf`` (f16, or q8_0), plus an Ollama ``Modelfile`` whose
  template and stop tokens are rendered from the model's own chat template.
Written to a temp folder next to ``--to`` and renamed: never a half-written export.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from chattune.catalog import assets
from chattune.errors import ConflictError, RuntimeFailure, ValidationError

FORMATS = ("merged", "adapter", "gguf")
GGUF_TYPES = ("f16", "q8_0")
_LLAMA_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def export(hf_dir: Path, adapter_dir: Path | None, fmt: str, to: Path, gguf_type: str) -> Path:
    """Write the export to ``to`` (must not exist or be empty); returns ``to``."""
    if fmt not in FORMATS:
        raise ValidationError(f"--format {fmt!r} is not known", f"use one of {', '.join(FORMATS)}")
    if gguf_type not in GGUF_TYPES:
        raise ValidationError(f"--type {gguf_type!r} is not known", "use f16 or q8_0")
    if to.exists() and any(to.iterdir()):
        raise ConflictError(f"{to} exists and is not empty", "pick a new --to folder")
    tmp = to.with_name(f".{to.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if fmt == "merged":
            shutil.copytree(hf_dir, tmp, ignore=shutil.ignore_patterns(".chattune-*"))
        elif fmt == "adapter":
            _adapter(adapter_dir, tmp)
        else:
            tmp.mkdir(parents=True)
            gguf = tmp / f"model-{gguf_type}.gguf"
            adds_bos = convert_to_gguf(hf_dir, gguf, gguf_type)
            (tmp / "Modelfile").write_text(modelfile(hf_dir, gguf.name, adds_bos))
        if to.exists():
            to.rmdir()
        to.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, to)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return to


def _adapter(adapter_dir: Path | None, dest: Path) -> None:
    if adapter_dir is None or not (adapter_dir / "adapter_config.json").is_file():
        raise ConflictError(
            "this version has no LoRA adapter: its job merged the weights or trained them all",
            "export --format merged, or train with `apply_lora: true` and "
            "`merge_lora_weights: false` to keep the adapter",
        )
    shutil.copytree(adapter_dir, dest)


def convert_to_gguf(hf_dir: Path, out: Path, gguf_type: str) -> bool:
    """Run llama.cpp's converter in its own process (see ``gguf_convert``); whether the
    GGUF tells llama.cpp to add the BOS token itself."""
    llama = llama_cpp_tools()
    cmd = [sys.executable, "-m", "chattune.registry.gguf_convert", str(llama), str(hf_dir)]
    proc = subprocess.run([*cmd, str(out), gguf_type], capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeFailure(
            f"llama.cpp's convert_hf_to_gguf.py failed on {hf_dir}: {last}",
            "export --format merged and convert it with llama.cpp by hand to see the details",
        )
    return gguf_adds_bos(out)


def gguf_adds_bos(path: Path) -> bool:
    """The GGUF's ``tokenizer.ggml.add_bos_token`` (llama.cpp adds BOS when true; absent
    is read as true, llama.cpp's default for the vocabularies chattune converts)."""
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields.get("tokenizer.ggml.add_bos_token")
    return True if field is None or not field.data else bool(field.parts[field.data[0]][0])


def llama_cpp_tools() -> Path:
    """llama.cpp's converter and its gguf-py, unpacked once from the cached sdist."""
    archive = assets.LLAMA_CPP
    dest = assets.cache_dir() / "tools" / f"llama.cpp-{archive.version}"
    if (dest / "convert_hf_to_gguf.py").is_file():
        return dest
    sdist = assets.download(archive)
    prefix = f"llama_cpp_python-{archive.version}/vendor/llama.cpp/"
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            rel = member.name.removeprefix(prefix)
            if member.name.startswith(prefix) and rel.startswith(_LLAMA_MEMBERS):
                member.name = rel
                tar.extract(member, tmp, filter="data")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, dest)
    except OSError:  # another export unpacked it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def modelfile(hf_dir: Path, gguf_name: str, adds_bos: bool = True) -> str:
    """An Ollama Modelfile whose TEMPLATE and SYSTEM give the prompts training gave.

    ``adds_bos``: whether llama.cpp adds the BOS token itself (the GGUF's
    ``tokenizer.ggml.add_bos_token``); then the template leaves it out. The template is
    checked against the chat template (as training applies it) on probe conversations.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    template, system = ollama_template(tok, adds_bos)
    problem = template_mismatch(tok, template, system, adds_bos)
    if problem:
        raise ValidationError(
            f"the chat template of {hf_dir} cannot be written as an Ollama template: {problem}",
            "export --format gguf without relying on the Modelfile, or write its TEMPLATE by hand",
        )
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if system is not None:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f'PARAMETER stop "{s}"' for s in stop_tokens(tok, _assistant_suffix(tok))]
    return "\n".join(lines) + "\n"


def ollama_template(tok: Any, adds_bos: bool) -> tuple[str, str | None]:
    """(TEMPLATE, SYSTEM) for Ollama: Go ``text/template`` over ``.Messages``.

    Training renders ``prepare_messages`` through the chat template; Ollama prepends the
    Modelfile's SYSTEM as a system message when a conversation has none. So SYSTEM is the
    template's default system prompt (SmolLM2's), and for a template that drops system
    messages (Phi-3) the Go template folds a leading one into the first user turn
    (``system + "\\n\\n" + user``), as ``prepare_messages`` does. A final assistant
    message is continued (no end-of-turn, no new generation prompt).
    """
    from chattune.data.chat import template_drops_system

    parts = template_parts(tok, strip_bos=adds_bos)
    lit = {k: _go_text(v) for k, v in parts.items() if isinstance(v, str)}
    drops = template_drops_system(tok)
    head = lit["lead"] + ('{{ $fold := false }}{{ $system := "" }}' if drops else "")
    if drops:
        system = "{{ if eq $i 0 }}{{ $fold = true }}{{ $system = .Content }}{{ end }}"
        fold = "{{ if and $fold (eq $i 1) }}{{ $system }}\n\n{{ end }}"
    elif parts["system_prefix"] is not None:
        system, fold = lit["system_prefix"] + "{{ .Content }}" + lit["system_suffix"], ""
    else:
        system, fold = "", ""
    template = (
        head
        + "{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        + '{{ if eq .Role "system" }}'
        + system
        + '{{ else if eq .Role "user" }}'
        + lit["user_prefix"]
        + fold
        + "{{ .Content }}"
        + lit["user_suffix"]
        + '{{ else if eq .Role "assistant" }}'
        + lit["assistant_prefix"]
        + "{{ .Content }}{{ if not $last }}"
        + lit["assistant_suffix"]
        + '{{ end }}{{ end }}{{ if and $last (ne .Role "assistant") }}'
        + lit["generation"]
        + "{{ end }}{{ end }}"
    )
    default = parts["default_system"]
    for text in (template, default or ""):
        if '"""' in text:
            raise ValidationError(
                'the chat template contains """, which a Modelfile cannot quote',
                "write the Modelfile by hand",
            )
    return template, default


def _go_text(text: str) -> str:
    """Literal text for a Go template (``{{`` written as an action printing it)."""
    return text.replace("{{", '{{ "{{" }}')


PROBES: list[list[tuple[str, str]]] = [
    [("user", "Hi")],
    [("system", "Be brief."), ("user", "Hi")],
    [("user", "Hi"), ("assistant", "Hello!"), ("user", "2+2?")],
    [("system", "Answer in French."), ("user", "Hi"), ("assistant", "Salut"), ("user", "Bye")],
    [("user", "Hi"), ("assistant", "Hel")],
]
"""Conversations the written template is checked on (with and without system, multi-turn,
and a final assistant message to continue)."""


def ollama_messages(
    conversation: list[tuple[str, str]], system: str | None
) -> list[dict[str, str]]:
    """The messages Ollama hands the template: SYSTEM first when the conversation has no
    system message of its own, and consecutive messages of one role joined by a blank line."""
    messages = [{"role": r, "content": c} for r, c in conversation]
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": system})
    collated: list[dict[str, str]] = []
    for message in messages:
        if collated and collated[-1]["role"] == message["role"]:
            collated[-1]["content"] += "\n\n" + message["content"]
        else:
            collated.append(dict(message))
    return collated


def training_prompt(tok: Any, conversation: list[tuple[str, str]]) -> str:
    """The text training and serving give the model for ``conversation`` (generation
    prompt added after a user turn, a final assistant turn continued)."""
    from chattune.data.chat import prepare_messages

    messages = prepare_messages(tok, [{"role": r, "content": c} for r, c in conversation])
    final = bool(messages) and messages[-1]["role"] == "assistant"
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not final, continue_final_message=final
    )


def ollama_prompt(
    tok: Any,
    template: str,
    system: str | None,
    adds_bos: bool,
    conversation: list[tuple[str, str]],
) -> str:
    """The text Ollama gives the model: the rendered TEMPLATE, after llama.cpp's BOS."""
    from chattune.registry.gotemplate import render

    messages = [
        {"Role": m["role"], "Content": m["content"]}  # Ollama's api.Message fields
        for m in ollama_messages(conversation, system)
    ]
    text = render(template, {"Messages": messages})
    return (tok.bos_token or "") + text if adds_bos else text


def template_mismatch(tok: Any, template: str, system: str | None, adds_bos: bool) -> str | None:
    """The first probe conversation Ollama would render differently from training."""
    for conversation in PROBES:
        want = training_prompt(tok, conversation)
        got = ollama_prompt(tok, template, system, adds_bos, conversation)
        if got != want:
            return f"{[r for r, _ in conversation]} renders {got!r}, training {want!r}"
    return None


def template_parts(tok: Any, strip_bos: bool = True) -> dict[str, str | None]:
    """The pieces a chat template writes around each message, found by rendering markers.

    A user turn is ``user_prefix CONTENT user_suffix`` (Phi-3's suffix also opens the
    assistant turn), an assistant turn ``assistant_prefix CONTENT assistant_suffix``, and
    ``generation`` what ``add_generation_prompt`` adds. ``lead`` is the BOS text the template
    starts with (kept when ``strip_bos`` is False); ``default_system`` what it writes as the
    system prompt when a conversation has none; ``system_prefix`` is None when the template
    drops system messages.
    """
    u1, a1, u2, s = "\x00U1\x00", "\x00A1\x00", "\x00U2\x00", "\x00S\x00"
    bos = tok.bos_token if tok.bos_token and "bos_token" in (tok.chat_template or "") else ""

    def render(messages: list[tuple[str, str]], gen: bool = False) -> str:
        convo = [{"role": role, "content": content} for role, content in messages]
        return tok.apply_chat_template(convo, tokenize=False, add_generation_prompt=gen)

    def between(text: str, start: str, end: str) -> str:
        found = re.search(re.escape(start) + "(.*)" + re.escape(end), text, re.S)
        if found is None:
            raise ValidationError(
                "the chat template does not write each message once, in order",
                "write the Modelfile by hand",
            )
        return found.group(1)

    one = render([("user", u1)]).removeprefix(bos)
    user_suffix = one.split(u1)[1]
    two = render([("user", u1), ("assistant", a1)]).split(u1)[1].removeprefix(user_suffix)
    assistant_prefix, assistant_suffix = two.split(a1)
    three = render([("user", u1), ("assistant", a1), ("user", u2)])
    user_prefix = between(three, a1 + assistant_suffix, u2)
    parts: dict[str, str | None] = {
        "lead": "" if strip_bos else bos,
        "user_prefix": user_prefix,
        "user_suffix": user_suffix,
        "assistant_prefix": assistant_prefix,
        "assistant_suffix": assistant_suffix,
        "generation": render([("user", u1)], gen=True).removeprefix(bos).removeprefix(one),
        "system_prefix": None,
        "system_suffix": None,
        "default_system": None,
    }
    system = render([("system", s), ("user", u1)]).removeprefix(bos)
    if s in system and system.index(s) < system.index(u1):  # else the template drops it
        prefix = system.split(s)[0]
        suffix = between(system, s, user_prefix + u1)
        parts["system_prefix"], parts["system_suffix"] = prefix, suffix
        before = one[: one.index(user_prefix + u1)]
        if before.startswith(prefix) and before.endswith(suffix) and before:
            parts["default_system"] = before[len(prefix) : len(before) - len(suffix)]
    return parts


def _assistant_suffix(tok: Any) -> str:
    return str(template_parts(tok)["assistant_suffix"])


def stop_tokens(tok: Any, assistant_suffix: str) -> list[str]:
    """Special tokens that end an assistant turn in the template, then the EOS token."""
    specials = sorted(set(tok.all_special_tokens) | set(tok.get_added_vocab()), key=len)
    found = [t for t in specials if t and t in assistant_suffix and t != tok.bos_token]
    if tok.eos_token and tok.eos_token not in found:
        found.append(tok.eos_token)
    return found
