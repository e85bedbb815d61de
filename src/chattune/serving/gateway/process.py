"""Run a gateway process: bind, report ``running``, reconcile until deleted, stop workers.

>>> run_gateway(Workspace(Path(".chattune")), "my-ep")  # blocks until the endpoint is deleted
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI

from chattune.serving import procs
from chattune.serving.gateway.app import create_gateway_app
from chattune.serving.gateway.supervisor import Supervisor
from chattune.serving.http import WORKER_SECRET_ENV
from chattune.serving.keys import KeyStore
from chattune.serving.pairs import PairRecorder, store_writer
from chattune.store import workspace_store
from chattune.workspace import Workspace

log = logging.getLogger("chattune.serving.gateway")

MAX_CONNECTIONS = 512
"""Connections the gateway keeps open to its workers, all deployments together."""


def run_gateway(
    ws: Workspace, endpoint: str, node: str | None = None, port: int | None = None
) -> None:
    """Serve ``endpoint`` until it is deleted or the process gets SIGTERM.

    With ``node``, this is an extra gateway of the endpoint (as on a second machine): it
    listens on ``port``, runs workers of its own, and follows the shared state (keys,
    traffic, deployments) without writing it.
    """
    # The workers this gateway starts answer only requests carrying this secret.
    os.environ[WORKER_SECRET_ENV] = secrets.token_urlsafe(32)
    store = workspace_store(ws).endpoints
    record = store.get(endpoint)
    if record is None:
        log.error("endpoint %s is not in %s", endpoint, ws.database_uri)
        sys.exit(2)
    sock = procs.listen_socket(record.host, (port or 0) if node else (record.port or 0))
    port = sock.getsockname()[1]
    supervisor = Supervisor(ws, endpoint, node)
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=MAX_CONNECTIONS))
    server: uvicorn.Server | None = None

    async def watch() -> None:
        await supervisor.run()
        log.info("endpoint %s was deleted; shutting down", endpoint)
        if server is not None:
            server.should_exit = True

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if node is None:
            store.update(endpoint, port=port, pid=os.getpid(), status="running", error=None)
        where = f"node {node} of endpoint" if node else "endpoint"
        log.info("%s %s listening on http://%s:%d", where, endpoint, record.host, port)
        if (exposed := procs.exposure_warning(record.host, endpoint)) is not None:
            log.warning("%s", exposed)
        task = asyncio.create_task(watch())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await supervisor.shutdown()
        await client.aclose()
        if node is None and store.delete_if_deleting(endpoint):  # finish `delete --no-wait`
            shutil.rmtree(ws.endpoint_dir(endpoint), ignore_errors=True)

    keys = KeyStore(ws.endpoint_dir(endpoint) / "keys.json")
    app = create_gateway_app(
        endpoint,
        keys,
        supervisor.table,
        client,
        reconcile=supervisor.reconcile,
        lifespan=lifespan,
        on_broken=supervisor.note_broken,
        pairs=PairRecorder(ws.endpoint_dir(endpoint), store_writer(ws.database_uri, endpoint)),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=3))
    server.run(sockets=[sock])
    log.info("gateway stopped")
