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
            convert_to_gguf(hf_dir, gguf, gguf_type)
            (tmp / "Modelfile").write_text(modelfile(hf_dir, gguf.name))
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


def convert_to_gguf(hf_dir: Path, out: Path, gguf_type: str) -> None:
    """Run llama.cpp's converter in its own process (see ``gguf_convert``)."""
    llama = llama_cpp_tools()
    cmd = [sys.executable, "-m", "chattune.registry.gguf_convert", str(llama), str(hf_dir)]
    proc = subprocess.run([*cmd, str(out), gguf_type], capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeFailure(
            f"llama.cpp's convert_hf_to_gguf.py failed on {hf_dir}: {last}",
            "export --format merged and convert it with llama.cpp by hand to see the details",
        )


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


def modelfile(hf_dir: Path, gguf_name: str) -> str:
    """An Ollama Modelfile: the chat template as a Go template, and its stop tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    parts = template_parts(tok)
    text = {k: v or "" for k, v in parts.items()}  # only the system parts may be None
    stops = stop_tokens(tok, text["assistant_suffix"])
    template = (
        "{{ range .Messages }}"
        + (
            '{{ if eq .Role "system" }}'
            + text["system_prefix"]
            + "{{ .Content }}"
            + text["system_suffix"]
            + "{{ end }}"
            if parts["system_prefix"] is not None
            else ""
        )
        + '{{ if eq .Role "user" }}'
        + text["user_prefix"]
        + "{{ .Content }}"
        + text["user_suffix"]
        + '{{ else if eq .Role "assistant" }}'
        + text["assistant_prefix"]
        + "{{ .Content }}"
        + text["assistant_suffix"]
        + "{{ end }}{{ end }}"
        + text["assistant_prefix"]
    )
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


def template_parts(tok: Any) -> dict[str, str | None]:
    """Role prefixes/suffixes of a chat template, found by rendering marker messages.

    Between two turns the template writes "end of the last turn" then "start of the next";
    the cut is at the last special token (``<|user|>``, ``<|im_start|>``), where a turn starts.
    """
    u1, a1, u2, s = "\x00U1\x00", "\x00A1\x00", "\x00U2\x00", "\x00S\x00"
    specials = set(tok.all_special_tokens) | set(tok.get_added_vocab())
    strip_bos = bool(tok.bos_token) and "bos_token" in (tok.chat_template or "")

    def render(messages: list[tuple[str, str]], gen: bool) -> str:
        convo = [{"role": role, "content": content} for role, content in messages]
        text = tok.apply_chat_template(convo, tokenize=False, add_generation_prompt=gen)
        return text.removeprefix(tok.bos_token) if strip_bos else text

    def cut(between: str) -> tuple[str, str]:
        at = max((between.rfind(t) for t in specials if t), default=-1)
        return (between[:at], between[at:]) if at >= 0 else (between, "")

    text = render([("user", u1), ("assistant", a1), ("user", u2)], gen=True)
    assistant_suffix, user_prefix = cut(text.split(a1)[1].split(u2)[0])
    user_suffix, assistant_prefix = cut(text.split(u2)[1])
    parts: dict[str, str | None] = {
        "user_prefix": user_prefix,
        "user_suffix": user_suffix,
        "assistant_prefix": assistant_prefix,
        "assistant_suffix": assistant_suffix,
        "system_prefix": None,
        "system_suffix": None,
    }
    system = render([("system", s), ("user", u1)], gen=False)
    if s in system and system.index(s) < system.index(u1):  # else the template drops it
        parts["system_prefix"], rest = system.split(s)
        parts["system_suffix"] = rest.split(u1)[0].removesuffix(user_prefix)
    return parts


def stop_tokens(tok: Any, assistant_suffix: str) -> list[str]:
    """Special tokens that end an assistant turn in the template, then the EOS token."""
    specials = sorted(set(tok.all_special_tokens) | set(tok.get_added_vocab()), key=len)
    found = [t for t in specials if t and t in assistant_suffix and t != tok.bos_token]
    if tok.eos_token and tok.eos_token not in found:
        found.append(tok.eos_token)
    return found
