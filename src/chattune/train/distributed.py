"""Multi-process fine-tuning through torchrun: DDP by default, DeepSpeed ZeRO or FSDP when
asked (the Trainer's own integrations), the gloo backend on CPU.

The job process calls :func:`run`; it starts ``torchrun ... -m chattune.train.distributed``,
each rank runs :func:`chattune.train.finetune.run`, and rank 0 alone writes the final model
and reports: its log lines come back on stdout, its metrics and progress through an events
file that :func:`run` forwards to the job's hooks (MLflow, ``jobs stream``) as they arrive.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chattune.compute import lifeline
from chattune.errors import RuntimeFailure
from chattune.train.params import TrainParams
from chattune.train.results import FineTuned, Hooks, ImportedModel, Preprocessed

STOP_GRACE_S = 30
TORCHRUN = "torch.distributed.run"


@dataclass(frozen=True)
class Launch:
    """How many processes train, where: ``nproc`` per node on ``nnodes`` nodes."""

    nproc: int
    nnodes: int = 1
    rendezvous: str | None = None
    """``host:port`` of node 0 when ``nnodes > 1``."""

    def command(self, args_file: Path) -> list[str]:
        """The torchrun command (what the job's log records)."""
        cmd = [sys.executable, "-m", TORCHRUN, f"--nproc-per-node={self.nproc}"]
        if self.nnodes > 1:
            cmd += [f"--nnodes={self.nnodes}", "--rdzv-backend=c10d"]
            cmd += [f"--rdzv-endpoint={self.rendezvous}"]
        else:
            cmd += ["--standalone"]
        return [*cmd, "-m", "chattune.train.distributed", str(args_file)]


def run(
    launch: Launch,
    model: ImportedModel,
    data: Preprocessed,
    p: TrainParams,
    out_dir: Path,
    hooks: Hooks,
    resuming: bool = False,
) -> FineTuned:
    """Train with ``launch.nproc`` processes; the rank-0 result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args_file, events, result = (
        out_dir / n for n in ("launch.json", "events.jsonl", "result.json")
    )
    events.unlink(missing_ok=True)
    result.unlink(missing_ok=True)
    args = {
        "model": model.model_dump(),
        "data": data.model_dump(),
        "params": p.model_dump(mode="json"),
        "out_dir": str(out_dir),
        "resuming": resuming,
    }
    args_file.write_text(json.dumps(args))
    cmd = launch.command(args_file)
    hooks.log.info(
        "launching %d processes x %d nodes: %s", launch.nproc, launch.nnodes, shlex.join(cmd)
    )
    code = _supervise(cmd, events, hooks)
    if code != 0 or not result.exists():
        raise RuntimeFailure(
            f"distributed training exited with code {code} (a rank failed or was killed)",
            "see the job log; `chattune jobs resume JOB` continues from the last checkpoint",
        )
    return FineTuned.model_validate_json(result.read_text())


def _supervise(cmd: list[str], events: Path, hooks: Hooks) -> int:
    """Run torchrun, forwarding rank 0's lines and events; stop it all if we are stopped."""
    proc = subprocess.Popen(
        cmd,
        env=rank_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own group: one signal reaches every rank
        # SIGTERM to torchrun (which stops its ranks) if the job process dies, however: this
        # thread waits on torchrun, so it lives as long as torchrun does.
        preexec_fn=lifeline.pdeathsig_preexec(signal.SIGTERM),
    )
    pump = threading.Thread(target=_pump, args=(proc, hooks), daemon=True)
    pump.start()
    offset = 0
    try:
        while proc.poll() is None:
            offset = _forward(events, offset, hooks)
            time.sleep(0.5)
        _forward(events, offset, hooks)
        pump.join(5)
        return proc.returncode
    finally:
        if proc.poll() is None:  # canceled (SIGTERM) or failed here: no rank is left behind
            _stop_group(proc)


def rank_environment() -> dict[str, str]:
    """The ranks' environment: without CUDA, DeepSpeed's CPU accelerator (it falls back to
    gloo when oneCCL is absent); the first DeepSpeed run on a CPU compiles its shared-memory
    collective once (g++, cached in ~/.cache/torch_extensions)."""
    import torch

    env = dict(os.environ)
    if not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")
    return env


def _pump(proc: subprocess.Popen[str], hooks: Hooks) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            hooks.log.info("  %s", line.rstrip())


def _forward(events: Path, offset: int, hooks: Hooks) -> int:
    """Hand events written since ``offset`` to the hooks; the new offset."""
    if not events.exists():
        return offset
    with open(events) as f:
        f.seek(offset)
        for line in f:
            if not line.endswith("\n"):  # a line still being written: next time
                break
            event = json.loads(line)
            if event["kind"] == "metrics":
                hooks.metrics(event["metrics"], event["step"])
            else:
                hooks.progress(**event["fields"])
            offset += len(line.encode())
    return offset


def _stop_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _rank_hooks(events: Path, rank: int) -> Hooks:
    """Rank 0 reports (stdout log, events file); the other ranks stay quiet."""
    import logging

    log = logging.getLogger("chattune.rank")
    log.propagate = False
    if rank == 0:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    else:
        return Hooks(log)

    def emit(event: dict[str, Any]) -> None:
        with open(events, "a") as f:
            f.write(json.dumps(event) + "\n")

    return Hooks(
        log,
        metrics=lambda m, step: emit({"kind": "metrics", "metrics": m, "step": step}),
        progress=lambda **fields: emit({"kind": "progress", "fields": fields}),
    )


def main(argv: list[str]) -> None:
    """One rank (started by torchrun): train, and on rank 0 write the result."""
    from chattune.train import finetune

    args = json.loads(Path(argv[0]).read_text())
    out_dir = Path(args["out_dir"])
    rank = int(os.environ.get("RANK", "0"))
    result = finetune.run(
        ImportedModel.model_validate(args["model"]),
        Preprocessed.model_validate(args["data"]),
        TrainParams.model_validate(args["params"]),
        out_dir,
        _rank_hooks(out_dir / "events.jsonl", rank),
        resuming=args["resuming"],
    )
    if rank == 0:
        tmp = out_dir / "result.json.tmp"
        tmp.write_text(result.model_dump_json())
        tmp.replace(out_dir / "result.json")


if __name__ == "__main__":
    lifeline.die_with_parent_named(TORCHRUN)  # a rank ends with its torchrun, however it ends
    main(sys.argv[1:])
