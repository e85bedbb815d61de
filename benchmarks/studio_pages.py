"""Claim: every studio page loads in under 1 s with 100 jobs and 50 model versions.

A temp workspace gets 100 finished jobs (real rows: stages, parameters; the job whose page
is measured has a real MLflow run with a 200-step loss curve) and 50
registered versions of one model (hard-linked tiny-random-phi3 folders), plus an endpoint
record with keys. The studio runs under uvicorn in this process (a thread) and httpx loads
each page plus the API calls its script makes on load, as a browser would; the median of 5
loads after one warm-up is the page's time. Side by side, the baseline: the bare SDK calls
behind the page (what ``chattune jobs list`` etc. spend), so the ratio is the studio's
own cost on top of the SDK.

    .venv/bin/python benchmarks/studio_pages.py [--jobs 100] [--versions 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.studio_workspace

from tests.studio_workspace import populate

from chattune.catalog import assets
from chattune.client import Client
from chattune.studio import create_studio_app

TOKEN = "benchmark"


def pages(
    client: Client, jobs: int, versions: int
) -> dict[str, tuple[list[str], Callable[[], object]]]:
    """page → (the page and the API calls its script makes on load, the bare SDK calls)."""
    job = f"job-{jobs // 2:03d}"
    version = str(versions // 2 or 1)
    return {
        "/": (["/"], client.jobs.list),
        f"/jobs/{job}": (
            [f"/jobs/{job}", *(f"/api/jobs/{job}{tail}" for tail in ("", "/log", "/metrics"))],
            lambda: (client.jobs.get(job), client.jobs.logs(job), client.jobs.metrics(job)),
        ),
        "/jobs-new": (
            ["/jobs-new", "/api/jobs-form/parameters"],
            lambda: (client.models.catalog(), client.data.files(), client.jobs.parameters()),
        ),
        "/data": (["/data"], lambda: (client.data.files(), client.models.catalog())),
        "/models": (["/models"], lambda: (client.models.list(), client.models.catalog())),
        f"/models/tiny-chat/{version}": (
            [f"/models/tiny-chat/{version}"],
            lambda: (client.models.lineage("tiny-chat", version), client.endpoints.list()),
        ),
        "/endpoints": (["/endpoints"], client.endpoints.list),
        "/endpoints/ep": (
            ["/endpoints/ep", "/api/endpoints/ep/logs"],
            lambda: (client.endpoints.get("ep"), client.endpoints.list_deployments("ep"),
                     client.endpoints.get_keys("ep"), client.models.list()),
        ),
        "/playground": (["/playground"], client.endpoints.list),
    }  # fmt: skip


def add_mlflow_run(client: Client, job: str, steps: int = 200) -> None:
    """Give ``job`` a real MLflow run with a loss curve (what its page reads from MLflow)."""
    import mlflow
    from mlflow.entities import Metric

    from chattune.store import workspace_store

    tracking = mlflow.MlflowClient(tracking_uri=client.workspace.mlflow_connect_uri)
    experiment = tracking.create_experiment(
        "bench", artifact_location=client.workspace.artifact_root
    )
    run = tracking.create_run(experiment, tags={"chattune.job": job}, run_name=job)
    now = int(time.time() * 1000)
    metrics = [Metric("loss", 2.0 / (1 + s / 50), now, s) for s in range(1, steps + 1)]
    metrics += [Metric("eval_loss", 2.1 / (1 + s / 50), now, s) for s in range(20, steps + 1, 20)]
    metrics += [Metric(f"test_{k}", 1.0, now, steps) for k in ("loss", "perplexity")]
    tracking.log_batch(run.info.run_id, metrics=metrics)
    tracking.set_terminated(run.info.run_id)
    workspace_store(client.workspace).jobs.update(job, mlflow_run_id=run.info.run_id)


def median_seconds(run: Callable[[], object], times: int = 5) -> tuple[float, float]:
    """(the first call: imports and caches cold, the median of ``times`` calls after it)."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    found = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        found.append(time.perf_counter() - start)
    return first, statistics.median(found)


def serve(client: Client, root: Path) -> tuple[uvicorn.Server, str]:
    app = create_studio_app(client, TOKEN, root=root)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--versions", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)  # data paths are relative to where the studio runs
        client = Client.init(root / "ws")
        start = time.perf_counter()
        populate(client, root, assets.require("tiny-random-phi3"), args.jobs, args.versions)
        add_mlflow_run(client, f"job-{args.jobs // 2:03d}")
        print(f"workspace: {args.jobs} jobs, {args.versions} versions "
              f"({time.perf_counter() - start:.1f} s to create)")  # fmt: skip
        server, base = serve(client, root)
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
        head = f"{'page':28} {'first load':>11} {'studio (page + api)':>20}"
        print(f"{head} {'bare SDK':>9} {'ratio':>6}")
        worst = 0.0
        for page, (paths, sdk) in pages(client, args.jobs, args.versions).items():

            def load(paths: list[str] = paths) -> None:
                for path in paths:
                    http.get(path).raise_for_status()

            (first, ours), (_, bare) = median_seconds(load), median_seconds(sdk)
            worst = max(worst, ours)
            print(
                f"{page:28} {first * 1000:8.0f} ms {ours * 1000:17.0f} ms {bare * 1000:6.0f} ms "
                f"{ours / bare:6.2f}"
            )
        print(f"slowest page: {worst * 1000:.0f} ms (target < 1000 ms): "
              f"{'met' if worst < 1 else 'NOT met'}")  # fmt: skip
        server.should_exit = True


if __name__ == "__main__":
    main()
