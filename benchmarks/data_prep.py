"""Claim: validate and preprocess stream in bounded memory, whatever the file size and the
longest row, and preprocess is at least 2x a `datasets.map` baseline.

Data: an ultrachat-shaped file of ROWS rows built from the ultrachat-sample rows (repeated,
each copy's user turns varied), and the same file plus one conversation of HUGE_MB in one
assistant message. Each measurement runs in its own process; peak RSS is the largest sum of
the RSS of that process and its workers, sampled every 50 ms (psutil).

- validate (ours): `chattune data validate`'s function, on the file with the huge row.
- preprocess (ours): the job's preprocess stage (tiny-random-phi3 tokenizer, max_seq_length
  512, worker processes = CPUs), on both files.
- preprocess (baseline): `datasets.load_dataset("json")` + `.map(num_proc=CPUs)` applying the
  same chat template and the same assistant masks the straightforward way (render, tokenize
  the whole text with offsets, label, truncate), on the file without the huge row (on the
  huge row alone it needs minutes and gigabytes: see the issue).

    .venv/bin/python benchmarks/data_prep.py [--rows 200000] [--huge-mb 50] [--max-len 512]
        [--speed-rows N: compare with the baseline on the first N rows] [--single]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def build(folder: Path, rows: int, huge_mb: int) -> tuple[Path, Path]:
    """``rows.jsonl`` (ROWS varied ultrachat rows) and ``huge.jsonl`` (the same + one huge row).

    The sample's conversations are short (one or two turns, LLaMA-Factory demo data), so each
    row joins three of them into one multi-turn conversation, varied per copy; the mean row
    then has ~5,300 characters (~1,300 tokens), the order of ultrachat_200k's multi-turn rows.
    """
    import pyarrow.parquet as pq

    from chattune.catalog import assets
    from chattune.data.convert import to_row

    sample = assets.fetch(["ultrachat-sample"])["ultrachat-sample"] / "data"
    base = [
        [m for m in r["messages"] if m["role"] != "system"]
        for f in sorted(sample.glob("*_sft-*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]
    base = [b for b in base if b and b[0]["role"] == "user" and b[-1]["role"] == "assistant"]
    plain, huge = folder / "rows.jsonl", folder / "huge.jsonl"
    with plain.open("w") as f:
        for k in range(rows):
            variant = k // len(base)
            messages = [
                {**m, "content": f"{m['content']} (variant {variant})"}
                if m["role"] == "user"
                else m
                for j in range(3)
                for m in base[(k + j * 7919) % len(base)]
            ]
            f.write(json.dumps(to_row(messages)) + "\n")
    text = " ".join(m["content"] for m in base[0])
    answer = (text * (huge_mb * 2**20 // len(text) + 1))[: huge_mb * 2**20]
    with huge.open("w") as f, plain.open() as src:
        for line in src:
            f.write(line)
        big = [
            {"role": "user", "content": "Repeat the story."},
            {"role": "assistant", "content": answer},
        ]
        f.write(json.dumps(to_row(big)) + "\n")
    return plain, huge


def measure(kind: str, file: Path, max_len: int, work: Path, procs: int) -> dict[str, Any]:
    """Run one measurement in a child process: seconds, rows, CPU seconds of the process
    and its workers, and peak memory (the largest sum of PSS over the process tree: forked
    workers share pages, so summing their RSS would count those pages twice)."""
    import psutil

    cmd = [
        sys.executable,
        str(HERE),
        "--child",
        kind,
        "--file",
        str(file),
        "--max-len",
        str(max_len),
        "--work",
        str(work),
    ]
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": tempfile.mkdtemp(dir=work),
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "CHATTUNE_PREPROCESS_PROCS": str(procs),
    }
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    parent, peak, usage = psutil.Process(proc.pid), 0, None
    while usage is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_full_info().pss for p in tree))
        except psutil.Error:
            pass
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            usage = (status, rusage)
        else:
            time.sleep(0.2)
    status, rusage = usage
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} on {file.name} failed ({status})")
    result = json.loads(out.strip().splitlines()[-1])
    cpu = rusage.ru_utime + rusage.ru_stime  # includes the reaped worker processes
    return {**result, "cpu_s": round(cpu, 1), "peak_mb": round(peak / 2**20)}


def child(kind: str, file: Path, max_len: int, work: Path) -> None:
    """One measurement, in this process: prints ``{"seconds", "rows"}``."""
    if kind == "validate":
        from chattune.data.report import validate_file

        start = time.perf_counter()
        rows = validate_file(file)["rows"]
    else:
        from transformers import AutoTokenizer

        from chattune.catalog import assets

        folder = assets.fetch(["tiny-random-phi3"])["tiny-random-phi3"]
        tokenizer = AutoTokenizer.from_pretrained(folder)
        start = time.perf_counter()
        rows = (ours if kind == "preprocess" else baseline)(tokenizer, folder, file, max_len, work)
    print(json.dumps({"seconds": round(time.perf_counter() - start, 2), "rows": rows}))


def ours(tokenizer: Any, folder: Path, file: Path, max_len: int, work: Path) -> int:
    from chattune.train import preprocess
    from chattune.train.results import Hooks, ImportedModel

    model = ImportedModel(
        model_dir=str(folder), model="tiny-random-phi3", model_type="phi3", context_length=4096
    )
    out = preprocess.run(model, {"train": str(file)}, max_len, work / "ours", Hooks())
    stats = out.splits["train"]
    return stats.examples + stats.dropped_no_target


def baseline(tokenizer: Any, folder: Path, file: Path, max_len: int, work: Path) -> int:
    import datasets

    from chattune.train.preprocess import num_proc  # $CHATTUNE_PREPROCESS_PROCS, as ours
    from chattune.train.template import IGNORE, assistant_char_spans, prepare_messages

    def one(row: dict[str, Any]) -> dict[str, list[int]]:
        text, spans = assistant_char_spans(tokenizer, prepare_messages(tokenizer, row["messages"]))
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        labels = [
            t if e > s and any(a <= s < b for a, b in spans) else IGNORE
            for t, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
        return {"input_ids": enc["input_ids"][:max_len], "labels": labels[:max_len]}

    data = datasets.load_dataset("json", data_files=str(file), split="train")
    # No cache: each measurement must do the work (a cached map would return in a second).
    out = data.map(
        one, remove_columns=data.column_names, num_proc=num_proc(), load_from_cache_file=False
    )
    out.to_json(work / "baseline.jsonl")
    return len(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--huge-mb", type=int, default=50)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--single", action="store_true", help="also compare in one process")
    parser.add_argument(
        "--speed-rows", type=int, default=0, help="compare with the baseline on the first N rows"
    )
    parser.add_argument("--child")
    parser.add_argument("--file", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.max_len, args.work)
        return
    with tempfile.TemporaryDirectory(prefix="data-prep-") as tmp:
        work = Path(tmp)
        plain, huge = build(work, args.rows, args.huge_mb)
        if args.speed_rows and args.speed_rows < args.rows:  # the ratio on the first rows
            head = work / f"head{args.speed_rows}.jsonl"
            with plain.open() as src, head.open("w") as dst:
                dst.writelines(line for line, _ in zip(src, range(args.speed_rows), strict=False))
            plain = head
        runs = [
            ("validate (ours)", "validate", huge, 1),
            ("preprocess (ours)", "preprocess", huge, args.procs),
            ("preprocess (ours)", "preprocess", plain, args.procs),
            ("preprocess (datasets.map)", "baseline", plain, args.procs),
        ]
        if args.single:
            runs += [
                ("preprocess (ours)", "preprocess", plain, 1),
                ("preprocess (datasets.map)", "baseline", plain, 1),
            ]
        print(
            f"{'':28} {'file':11} {'procs':>5} {'rows':>8} {'seconds':>8} {'rows/s':>8} "
            f"{'CPU s':>7} {'peak MB':>8}"
        )
        results = []
        for label, kind, file, procs in runs:
            r = measure(kind, file, args.max_len, work, procs)
            results.append(r)
            print(
                f"{label:28} {file.name:11} {procs:>5} {r['rows']:>8} {r['seconds']:>8.1f} "
                f"{r['rows'] / r['seconds']:>8.0f} {r['cpu_s']:>7.1f} {r['peak_mb']:>8}",
                flush=True,
            )
    pairs = [(args.procs, results[2:4]), *([(1, results[4:6])] if args.single else [])]
    for n, (ours_r, base_r) in pairs:
        wall = base_r["seconds"] / ours_r["seconds"]
        cpu = base_r["cpu_s"] / ours_r["cpu_s"]
        print(f"preprocess vs datasets.map, {n} process(es): {wall:.2f}x wall, {cpu:.2f}x CPU")
    print(
        f"({args.rows} rows + one {args.huge_mb} MB row; speed compared on {plain.name}; "
        f"max_seq_length {args.max_len}; {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
