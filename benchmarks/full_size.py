"""Claim: the whole pipeline runs at ultrachat_200k's size, and the fine-tune stage's peak
memory does not grow with the number of rows (issue 19).

Data, synthesised and seeded: ``train`` has ROWS conversations (ultrachat_200k's train_sft:
207,865) and ``test`` 2% of the matching test_sft size (23,110 at 207,865 rows: 462), the
split evaluate scores (it has no parameter that bounds it). The offline sample
(ultrachat-sample, read by chattune's own reader) holds short conversations (one or two
turns); each synthetic row joins three of them drawn at random, so its turn count and
per-turn lengths follow the sample's distributions and a row has ~1,300 tokens, the order of
ultrachat_200k's multi-turn rows; each user turn gets a row number so no two rows are equal.

Run: a real job through the SDK (``chattune.Client``) on tiny-random-phi3, ``max_steps: 5``,
``max_seq_length`` 512, no evaluation during training (the evaluate stage scores test):
validate → model_import → preprocess → finetune → evaluate (base and fine-tuned on test,
8 generated answers) → package. Each stage's time and peak RSS
come from the job log: the runner records both per stage (``chattune.jobs.peak``: the job
process's high-water mark, reset when the stage starts, and the sampled sum with the
processes the stage starts).

    .venv/bin/python benchmarks/full_size.py [--rows 20000 207865] [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

REFERENCE_ROWS = 207_865
REFERENCE_TEST_ROWS = 23_110
"""ultrachat_200k's train_sft and test_sft rows."""
TEST_FRACTION = 0.02
"""evaluate has no bound on its test split, so the test split is 2% of test_sft's rows
(scaled with ROWS): 462 at the reference size."""
SEED = 19
STAGE_LINE = re.compile(r"stage (\w+): completed in ([\d.]+)s, peak RSS (\d+) MB")


def sample_conversations() -> list[list[dict[str, str]]]:
    """The offline sample's train_sft conversations, through chattune's reader."""
    from chattune.catalog import assets
    from chattune.data.readers import load_conversations

    folder = assets.fetch(["ultrachat-sample"])["ultrachat-sample"]
    convs = [[dict(m) for m in c.messages] for c in load_conversations(folder, "train_sft")]
    return [c for c in convs if c[0]["role"] == "user" and c[-1]["role"] == "assistant"]


def synthesise(path: Path, rows: int, base: list[list[dict[str, str]]], seed: int) -> None:
    """``rows`` conversations, each three sample conversations in a row (seeded)."""
    from chattune.data.convert import to_row

    rng = random.Random(seed)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        for k in range(rows):
            messages = [
                {**m, "content": f"{m['content']} (row {k})"} if m["role"] == "user" else m
                for conv in rng.choices(base, k=3)
                for m in conv
            ]
            f.write(json.dumps(to_row(messages)) + "\n")
    tmp.replace(path)


def turn_stats(path: Path, limit: int = 20_000) -> dict[str, float]:
    """Mean turns and characters per row of a synthesised file (its first ``limit`` rows)."""
    turns = chars = n = 0
    with path.open() as f:
        for line in f:
            messages = json.loads(line)["messages"]
            turns += len(messages)
            chars += sum(len(m["content"]) for m in messages)
            n += 1
            if n == limit:
                break
    return {"messages_per_row": turns / n, "chars_per_row": chars / n}


def run_job(work: Path, rows: int, data: dict[str, str]) -> dict[str, Any]:
    """One job over ``data``; each stage's seconds and peak RSS from the job's log."""
    from chattune import Client

    client = Client.init(work / "workspace")
    spec = {
        "name": f"full-size-{rows}",
        "model": "tiny-random-phi3",
        "data": data,
        "parameters": {
            "max_steps": 5,
            "max_seq_length": 512,
            "logging_steps": 1,
            "per_device_train_batch_size": 4,
            "per_device_eval_batch_size": 8,
            "evaluation_strategy": "no",
            "generation_eval_rows": 8,
        },
    }
    started = time.time()
    job = client.jobs.create(spec)
    job = client.jobs.wait(job.name)
    log = client.jobs.logs(job.name)
    stages = {
        m.group(1): {"seconds": float(m.group(2)), "peak_rss_mb": int(m.group(3))}
        for m in STAGE_LINE.finditer(log)
    }
    if job.status != "completed":
        raise SystemExit(f"job {job.name} {job.status}: {job.error}\n{log[-4000:]}")
    return {"rows": rows, "wall_s": time.time() - started, "stages": stages}


def measure(work: Path, rows: int, base: list[list[dict[str, str]]]) -> dict[str, Any]:
    data_dir = work / f"data-{rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    train, test = data_dir / "train.jsonl", data_dir / "test.jsonl"
    test_rows = test_size(rows)
    made = time.time()
    synthesise(train, rows, base, SEED)
    synthesise(test, test_rows, base, SEED + 1)
    print(f"{rows} rows: data synthesised in {time.time() - made:.0f}s {turn_stats(train)}")
    result = run_job(work, rows, {"train": str(train), "test": str(test)})
    result["test_rows"] = test_rows
    return result


def test_size(rows: int) -> int:
    """2% of the test_sft rows ultrachat_200k would have at ``rows`` train_sft rows."""
    return max(1, round(rows * REFERENCE_TEST_ROWS / REFERENCE_ROWS * TEST_FRACTION))


def table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'rows':>9} {'stage':<13}{'time s':>9}{'peak RSS MB':>13}")
    for r in results:
        for stage, s in r["stages"].items():
            print(f"{r['rows']:>9,} {stage:<13}{s['seconds']:>9.1f}{s['peak_rss_mb']:>13,}")
    if len(results) > 1:
        small, big = results[0]["stages"]["finetune"], results[-1]["stages"]["finetune"]
        ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
        print(
            f"\nfinetune peak RSS, {results[-1]['rows']:,} vs {results[0]['rows']:,} rows: "
            f"{ratio:.3f}x (target: within 10%)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, REFERENCE_ROWS])
    parser.add_argument("--work", type=Path, default=None, help="kept; default: a temp folder")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    base = sample_conversations()
    with tempfile.TemporaryDirectory(prefix="chattune-full-") as tmp:
        work = args.work or Path(tmp)
        results = [measure(work, rows, base) for rows in args.rows]
    table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
