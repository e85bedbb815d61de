"""Run a gateway process: bind, report ``running``, reconcile until deleted, stop workers.

Split from :mod:`chattune.serving.gateway` so the HTTP app stays free of process wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI

from chattune.serving import procs, state
from chattune.serving.gateway import create_gateway_app
from chattune.serving.keys import KeyStore
from chattune.serving.supervisor import Supervisor
from chattune.workspace import Workspace

log = logging.getLogger("chattune.serving.gateway")


def run_gateway(ws: Workspace, endpoint: str) -> None:
    """Serve ``endpoint`` until it is deleted or the process gets SIGTERM."""
    with ws.db() as conn:
        row = state.endpoint_row(conn, endpoint)
    if row is None:
        log.error("endpoint %s is not in %s", endpoint, ws.db_path)
        sys.exit(2)
    host = row["host"]
    sock = procs.listen_socket(host, row["port"] or 0)
    port = sock.getsockname()[1]
    supervisor = Supervisor(ws, endpoint, host)
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=512))
    server: uvicorn.Server | None = None

    async def watch() -> None:
        await supervisor.run()
        log.info("endpoint %s was deleted; shutting down", endpoint)
        if server is not None:
            server.should_exit = True

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.set_endpoint(ws, endpoint, port=port, pid=os.getpid(), status="running", error=None)
        log.info("endpoint %s listening on http://%s:%d", endpoint, host, port)
        task = asyncio.create_task(watch())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await supervisor.shutdown()
        await client.aclose()
        _forget_if_deleting(ws, endpoint)

    app = create_gateway_app(
        endpoint,
        KeyStore(ws.endpoint_dir(endpoint) / "keys.json"),
        supervisor.table,
        client,
        reconcile=supervisor.reconcile,
        lifespan=lifespan,
    )
    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    log.info("gateway stopped")


def _forget_if_deleting(ws: Workspace, endpoint: str) -> None:
    """Finish a ``delete --no-wait``: the workers are stopped, so drop rows and files."""
    with ws.db() as conn:
        row = state.endpoint_row(conn, endpoint)
        if row is None or row["status"] != state.DELETING:
            return
        conn.execute("DELETE FROM deployments WHERE endpoint = ?", (endpoint,))
        conn.execute("DELETE FROM endpoints WHERE name = ?", (endpoint,))
    shutil.rmtree(ws.endpoint_dir(endpoint), ignore_errors=True)
