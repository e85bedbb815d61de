"""Claim: a chattune worker answers concurrent clients faster than plain transformers.

Ours: a worker process (``python -m chattune.serving.worker``, default settings: continuous
batching, dtype chosen per machine) called over loopback HTTP (``/v1/chat/completions``,
greedy, 64 new tokens) by 1, 4 and 16 clients whose arrivals are staggered.
Baselines, same prompts, same invocation: transformers ``generate`` one request at a time in
float32, and one static ``generate`` batch of all the prompts in float32 and in bf16; each
16-client run is paired with a static bf16 run just before it (on a shared machine the load
changes between minutes; a pair sees the same load), and is also compared with the best
static run of the invocation. Tokens are counted up to each answer's end token on both sides.

Each baseline runs in a child process, as a worker runs in its own process: in one process
where two threads have run torch there are two OpenMP thread teams, more threads than 2
cores, and libgomp then parks its threads between parallel regions, so every small op waits
for a wake-up (measured here: a 16 x 576 x 1536 bf16 matmul 145 us alone, 292 us with a
second, idle team in the process). Both sides were slowed that way when they shared one.

    .venv/bin/python benchmarks/serving_throughput.py [--model NAME] [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from chattune.catalog import assets
from chattune.data.readers import load_conversations
from chattune.serving.http import WORKER_SECRET_ENV, WORKER_SECRET_HEADER

NEW_TOKENS = 64
STAGGERS = (0.01, 0.05, 0.1)
"""Seconds between the arrivals of the 16 clients: the static batch has all its prompts at
once, so the later the last client arrives, the more decoding steps (one forward pass each,
most of whose cost on a CPU is fixed) a running batch needs for the same answers."""


def prompts(count: int) -> list[list[dict[str, str]]]:
    """The first user turns of the ultrachat sample, shortened (realistic chat prompts)."""
    data = assets.fetch(["ultrachat-sample"])["ultrachat-sample"]
    convs = load_conversations(data, split="train_sft")
    return [[{"role": "user", "content": c.messages[0]["content"][:300]}] for c in convs[:count]]


def encode(tok: Any, conv: list[dict[str, str]]) -> list[int]:
    text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    return list(tok(text, add_special_tokens=False)["input_ids"])


def answer_tokens(row: list[int], eos: set[int]) -> int:
    """Tokens up to (not including) the first end token."""
    for i, token in enumerate(row):
        if token in eos:
            return i
    return len(row)


def generate(model: Any, tok: Any, ids: list[list[int]], eos: set[int]) -> list[int]:
    """One left-padded greedy ``generate`` call; answer tokens per row."""
    width = max(len(x) for x in ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else min(eos)
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=model.device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=model.device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=sorted(eos),
            pad_token_id=pad,
        )
    return [answer_tokens(row, eos) for row in out[:, width:].tolist()]


def baseline(
    kind: str, folder: Any, convs: list, one_at_a_time: int, device: str
) -> dict[str, float]:
    """One baseline run (in the child process ``main`` starts for it): ``one-at-a-time``
    (float32), ``static-float32`` or ``static-bf16``."""
    dtype = torch.bfloat16 if kind.endswith("bf16") else torch.float32
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    ids = [encode(tok, c) for c in convs]
    generate(model, tok, ids[:2], eos)  # warm-up
    if kind == "one-at-a-time":
        latencies, tokens = [], 0
        started = time.perf_counter()
        for x in ids[:one_at_a_time]:
            t0 = time.perf_counter()
            tokens += generate(model, tok, [x], eos)[0]
            latencies.append(time.perf_counter() - t0)
        return summary(tokens, time.perf_counter() - started, latencies)
    started = time.perf_counter()
    tokens = sum(generate(model, tok, ids, eos))
    wall = time.perf_counter() - started
    return summary(tokens, wall, [wall])


def child(kind: str, args: argparse.Namespace) -> dict[str, float]:
    """:func:`baseline` in a fresh process (see the module docstring for why)."""
    cmd = [sys.executable, __file__, "--model", args.model, "--device", args.device]
    cmd += ["--baseline", kind]
    out = subprocess.run(
        [*cmd, "--one-at-a-time", str(args.one_at_a_time)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(tokens: int, wall: float, latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"  ... {tokens} tokens in {wall:.1f} s, p95 {p95:.2f} s", file=sys.stderr, flush=True)
    return {
        "tokens": tokens,
        "tok_s": tokens / wall,
        "p50": statistics.median(ordered),
        "p95": p95,
    }


async def clients(
    base_url: str, headers: dict[str, str], convs: list, count: int, stagger: float, requests: int
) -> dict[str, float]:
    """``count`` clients, arriving ``stagger`` s apart, share ``requests`` requests."""
    latencies: list[float] = []
    tokens = 0

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal tokens
        await asyncio.sleep(i * stagger)
        for j in range(i, requests, count):
            body = {"messages": convs[j], "max_tokens": NEW_TOKENS, "temperature": 0}
            t0 = time.perf_counter()
            answer = await http.post("/v1/chat/completions", json=body)
            latencies.append(time.perf_counter() - t0)
            assert answer.status_code == 200, answer.text
            tokens += answer.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(count)))
        wall = time.perf_counter() - started
    return summary(tokens, wall, latencies)


@contextlib.contextmanager
def worker(folder: Any, device: str) -> Iterator[tuple[str, dict[str, str], str]]:
    """A worker process (``python -m chattune.serving.worker``, default settings) on a free
    loopback port: its URL, the headers its gateway would send, and the dtype it chose."""
    secret = secrets.token_urlsafe(16)
    env = {**os.environ, WORKER_SECRET_ENV: secret}
    if not device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "chattune.serving.worker", "--model-path", str(folder)]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([*cmd, "--deployment", "bench"], env=env, stderr=log)
        try:
            url = _wait_listening(log, proc)
            while httpx.get(f"{url}/health/ready").status_code != 200:
                assert proc.poll() is None, "the worker exited"
                time.sleep(0.2)
            log.seek(0)
            dtype = re.findall(r"dtype (\w+):", log.read())[-1]
            yield url, {WORKER_SECRET_HEADER: secret}, dtype
        finally:
            proc.terminate()
            proc.wait(30)


def _wait_listening(log: Any, proc: subprocess.Popen) -> str:
    while proc.poll() is None:
        log.seek(0)
        found = re.search(r"listening on ([\d.]+):(\d+)", log.read())
        if found:
            return f"http://{found[1]}:{found[2]}"
        time.sleep(0.1)
    raise RuntimeError("the worker exited before listening")


def ours(
    folder: Any, convs: list, args: argparse.Namespace, static: Callable[[], dict[str, float]]
) -> tuple[dict[str, list[dict]], dict[str, list[float]], list[dict[str, float]], str]:
    """Our runs (``--repeats`` of each 16-client one); each 16-client run's ratio to the
    static bf16 run just before it; those static runs; the dtype the worker chose."""
    results: dict[str, list[dict]] = {}
    paired: dict[str, list[float]] = {}
    statics = []
    with worker(folder, args.device) as (url, headers, dtype):
        print(f"chattune worker ({dtype}) at {url}", flush=True)
        asyncio.run(clients(url, headers, convs[:2], 2, 0.0, 2))  # warm-up
        runs = [(1, 0.0, args.one_at_a_time), (4, 0.25, 16)]
        runs += [(16, s, 16) for _ in range(args.repeats) for s in STAGGERS]
        for count, stagger, requests in runs:
            label = f"chattune, {count} client{'s' if count > 1 else ''}"
            if count > 1:
                label += f", {stagger * 1000:g} ms apart"
            before = static() if count == 16 else None
            run = asyncio.run(clients(url, headers, convs, count, stagger, requests))
            results.setdefault(label, []).append(run)
            if before is not None:
                statics.append(before)
                paired.setdefault(label, []).append(run["tok_s"] / before["tok_s"])
    return results, paired, statics, dtype


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--one-at-a-time", type=int, default=6, help="requests at 1 client")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each 16-client case")
    parser.add_argument("--baseline", help=argparse.SUPPRESS)  # the child's run (child())
    args = parser.parse_args()
    torch.manual_seed(0)
    folder = assets.fetch([args.model])[args.model]
    convs = prompts(16)
    if args.baseline:
        result = baseline(args.baseline, folder, convs, args.one_at_a_time, args.device)
        print(json.dumps(result))
        return
    base = {}
    for kind, name in [
        ("one-at-a-time", "generate, one at a time, float32"),
        ("static-float32", "generate, static batch of 16, float32"),
        ("static-bf16", "generate, static batch of 16, bf16"),
    ]:
        print(f"baseline: {name}", flush=True)
        base[name] = child(kind, args)
    mine, paired, statics, dtype = ours(folder, convs, args, lambda: child("static-bf16", args))
    single = base["generate, one at a time, float32"]
    statics += [v for k, v in base.items() if "static" in k]
    static = max(statics, key=lambda v: v["tok_s"])
    print(
        f"\n{args.model}, greedy, {NEW_TOKENS} new tokens; {_machine(args.device)}; "
        f"chattune chose {dtype}; best static batch {static['tok_s']:.1f} tok/s (of "
        f"{len(statics)} static runs); chattune's 16-client rows: median of {args.repeats}"
    )
    print(
        f"{'':48} {'tok/s':>7} {'p50 s':>7} {'p95 s':>7} {'x 1-at-a-time':>14}"
        f" {'x best static':>13}"
    )
    for name, r in {**base, **{k: _median(v) for k, v in mine.items()}}.items():
        print(
            f"{name:48} {r['tok_s']:7.1f} {r['p50']:7.2f} {r['p95']:7.2f} "
            f"{r['tok_s'] / single['tok_s']:14.2f} {r['tok_s'] / static['tok_s']:13.2f}"
        )
    for name, ratios in paired.items():
        each = " ".join(f"{r:.2f}" for r in ratios)
        print(f"{name} / static bf16 run just before it: {each}")
    one = mine["chattune, 1 client"][0]
    print(f"p95 at 1 client / baseline p95: {one['p95'] / single['p95']:.2f}")


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run of median throughput (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r["tok_s"])[len(runs) // 2]


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
