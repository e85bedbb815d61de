"""Prints the table of docs/reliability.md from the figures the reliability suite recorded.

The slow tests of ``tests/reliability/`` each write one JSON file into
``$CHATTUNE_RELIABILITY_OUT`` (default ``.chattune-reliability/``); this script only reads
them, so every figure in the table is one a test measured and asserted on.

    .venv/bin/python -m pytest -q -m 'reliability' tests/reliability   # records the figures
    .venv/bin/python benchmarks/reliability_table.py [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROWS = {
    "training-kills": (
        "`kill -9` of a job at 6 seeded points (preprocess, steps, mid-checkpoint, evaluate, "
        "mid-packaging), then `jobs resume`",
        lambda f: (
            f"{f['survived']}/{f['kills']} resumed to completion; weights bit-identical to an "
            f"uninterrupted run, metrics within 1e-6; resume to completed: median "
            f"{f['resume_to_completed_s_median']} s, max {f['resume_to_completed_s_max']} s"
        ),
    ),
    "endpoint-soak": (
        "Soak: 16 concurrent clients on tiny-random-phi3 (2 workers), `/score`, 4 new tokens",
        lambda f: (
            f"{f['requests']} requests, {f['errors']} errors ({f['designed_429']} designed 429s); "
            f"{f['requests_per_s']} req/s; p50 {f['p50_ms']} ms, p95 {f['p95_ms']} ms, "
            f"p99 {f['p99_ms']} ms; RSS growth after warm-up: gateway "
            f"{f['rss_growth_gateway_pc']}%, workers ≤ {f['rss_growth_worker_max_pc']}%"
        ),
    ),
    "worker-kill": (
        "A worker `kill -9`ed under load (16 clients, 1,500 requests)",
        lambda f: (
            f"{f['failed']} failed (JSON errors {', '.join(f['failed_codes']) or '-'}), the rest "
            f"served; back in {f['worker_back_s']} s; slowest answer {f['max_latency_s']} s "
            "(no hang)"
        ),
    ),
    "gateway-kill": (
        "The gateway `kill -9`ed, then `chattune endpoints start`",
        lambda f: (
            f"serving again in {f['restored_s']} s, same port: {f['same_port']}, old keys "
            "still valid"
        ),
    ),
    "slow-clients": (
        "8 clients sending a body one byte a second, beside normal traffic",
        lambda f: (
            f"others' p50 {f['p50_ms_beside']} ms beside them vs {f['p50_ms_alone']} ms alone"
        ),
    ),
    "preauth-100": (
        "100 keyless connections each uploading 4 MiB - 1 byte to the gateway",
        lambda f: (
            f"all {f['connections']} answered 401 from their headers and closed within "
            f"{f['last_closed_s']:.1f} s; gateway RSS +{f['rss_growth_mb']} MB"
        ),
    ),
    "preauth-1000": (
        "1,000 keyless connections sending their body one byte a second",
        lambda f: (
            f"all {f['connections']} answered 401 and closed within {f['last_closed_s']:.1f} s; "
            f"gateway RSS +{f['rss_growth_mb']} MB"
        ),
    ),
    "stream-hang-ups": (
        "32 streaming clients hang up after the first chunk (all batch slots taken)",
        lambda f: f"the next {f['then_served']} requests all served (no 429) in {f['seconds']} s",
    ),
}


def table(folder: Path) -> str:
    lines = ["| What is tested | Last run | Reproduce |", "|---|---|---|"]
    for row, (what, describe) in ROWS.items():
        path = folder / f"{row}.json"
        if not path.exists():
            lines.append(f"| {what} | not run yet | |")
            continue
        data = json.loads(path.read_text())
        figures = describe(data["figures"])
        lines.append(f"| {what} | {figures} ({data['recorded']}) | `{data['command']}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("CHATTUNE_RELIABILITY_OUT") or ".chattune-reliability"
    parser.add_argument("--out", default=default, help="Folder the suite wrote its figures to.")
    print(table(Path(parser.parse_args().out)))


if __name__ == "__main__":
    main()
