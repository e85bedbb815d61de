"""Claim: a vLLM deployment behind chattune's gateway keeps >= 0.95x the throughput of the
same vLLM server called directly (16 concurrent clients, greedy, 64 new tokens).

One run, side by side: fine-tune SmolLM2 for a few steps (or reuse --model NAME:VERSION),
register it, deploy it with `--engine vllm`, then send the same load through the gateway
(endpoint key, /v1/chat/completions) and straight to the deployment's vLLM server, in
alternating rounds, and print output tokens/s and the ratio.

    .venv/bin/python benchmarks/vllm_gateway.py [--clients 16] [--requests 4] [--rounds 2]

Needs `chattune engines install vllm` first (minutes, about 1 GB).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from chattune import Client

QUESTIONS = [
    "Explain why the sky is blue in two sentences.",
    "Give three tips for writing clear emails.",
    "What is a binary search, briefly?",
    "Name four planets and one fact about each.",
]


def registered_model(client: Client, data: Path) -> str:
    client.data.download("ultrachat-sample", split_pc=5, out=data)
    spec = {
        "model": "SmolLM2-135M-Instruct",
        "data": {"train": str(data / "train_sft.jsonl")},
        "parameters": {"max_steps": 2, "evaluation_strategy": "no"},
    }
    job = client.jobs.wait(client.jobs.create(spec).name, timeout=900)
    assert job.status == "completed", client.jobs.logs(job.name)
    return client.models.register(job=job.name, name="smollm2-bench").ref


def load(url: str, headers: dict[str, str], model: str, clients: int, requests: int) -> float:
    """Output tokens per second for ``clients`` threads sending ``requests`` each."""

    def one(i: int) -> int:
        tokens = 0
        with httpx.Client(timeout=600) as http:
            for r in range(requests):
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": QUESTIONS[(i + r) % 4]}],
                    "max_tokens": 64,
                    "temperature": 0,
                }
                answer = http.post(url, json=body, headers=headers)
                answer.raise_for_status()
                tokens += answer.json()["usage"]["completion_tokens"]
        return tokens

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(one, range(clients)))
    return total / (time.perf_counter() - start)


def direct_address(client: Client, endpoint: str, deployment: str) -> tuple[str, str]:
    """The deployment's own vLLM server (port from its log, key from its environment)."""
    log = client.endpoints.get_logs(endpoint, deployment, lines=2000)
    port = re.findall(r"vLLM server pid (\d+) on 127\.0\.0\.1:(\d+)", log)[-1]
    environ = Path(f"/proc/{port[0]}/environ").read_bytes().split(b"\0")
    key = next((e[len(b"VLLM_API_KEY=") :] for e in environ if e.startswith(b"VLLM_API_KEY=")), b"")
    return f"http://127.0.0.1:{port[1]}/v1/chat/completions", key.decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="per client and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=None, help="registered NAME:VERSION to deploy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        client = Client.init(Path(tmp) / "ws")
        ref = args.model or registered_model(client, Path(tmp) / "data")
        client.endpoints.create("bench")
        try:
            started = time.perf_counter()
            client.endpoints.create_deployment(
                "bench",
                "vllm",
                ref,
                engine="vllm",
                max_concurrent_requests_per_instance=args.clients,  # vLLM batches them
                max_batch_size=args.clients,
            )
            print(f"vLLM deployment ready in {time.perf_counter() - started:.0f}s")
            client.endpoints.update("bench", traffic={"vllm": 100})
            info = client.endpoints.get("bench")
            key = client.endpoints.get_keys("bench")["primary_key"]
            gateway = (f"{info.base_url}/v1/chat/completions", {"Authorization": f"Bearer {key}"})
            url, direct_key = direct_address(client, "bench", "vllm")
            direct = (url, {"Authorization": f"Bearer {direct_key}"} if direct_key else {})
            load(*gateway, ref, args.clients, 1)  # warm-up
            rates: dict[str, list[float]] = {"gateway": [], "direct": []}
            for _ in range(args.rounds):
                for name, (u, h) in (("direct", direct), ("gateway", gateway)):
                    rates[name].append(load(u, h, ref, args.clients, args.requests))
        finally:
            client.endpoints.delete("bench")
    g, d = statistics.mean(rates["gateway"]), statistics.mean(rates["direct"])
    print(f"{'path':10} {'output tok/s':>14}  rounds")
    for name, values in rates.items():
        print(f"{name:10} {statistics.mean(values):14.1f}  {[round(v, 1) for v in values]}")
    print(f"gateway / direct: {g / d:.3f}x  ({args.clients} clients, 64 new tokens, greedy)")


if __name__ == "__main__":
    main()
