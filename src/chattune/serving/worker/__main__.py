"""``python -m chattune.serving.worker``: one model instance behind HTTP.

Serves HTTP at once (liveness) and loads the model in the background; readiness turns true
the moment loading ends, so the gateway routes to it without a fixed wait. The gateway passes
an inherited listening socket (``--fd``) and the deployment's settings whole
(``--settings-json``); by hand::

    python -m chattune.serving.worker --model-path models/demo/1 --port 8001 --deployment demo
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

from chattune.compute import lifeline
from chattune.serving.http import DEFAULT_MAX_BODY_BYTES, WORKER_SECRET_ENV
from chattune.serving.settings import DeploymentSettings

if TYPE_CHECKING:
    from chattune.serving.worker.engines import Engine

log = logging.getLogger("chattune.serving.worker")
LOAD_FAILED_EXIT = 3


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, start loading the model, serve until SIGTERM."""
    parent = os.getppid()  # first thing: a parent dead by the time it was read shows as 1
    held = lifeline.hold()  # the gateway's lifeline: EOF the moment the gateway is gone
    args = _parse(argv)
    if args.exit_with_parent and not held:  # started by hand: poll the parent instead
        lifeline.watch_parent(parent)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {args.deployment}[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("uvicorn.access").addFilter(_NoProbes())
    settings = DeploymentSettings.parse(args.settings_json or "{}")
    engine = _engine(settings, args.model_path, args.model_name)
    from chattune.serving.worker.app import create_worker_app

    secret = os.environ.pop(WORKER_SECRET_ENV, None)  # not for the engine's children
    app = create_worker_app(engine, args.deployment, settings, args.max_body_bytes, secret)
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.create_server((args.host, args.port))
    log.info("listening on %s:%d, loading %s", *sock.getsockname()[:2], args.model_path)
    engine.start()
    _exit_when_load_fails(engine)

    import uvicorn

    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chattune.serving.worker")
    parser.add_argument("--model-path", required=True, help="HuggingFace model folder")
    parser.add_argument("--model-name", default=None, help="name in answers (NAME:VERSION)")
    parser.add_argument("--deployment", default="default")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fd", type=int, default=None, help="inherited listening socket")
    parser.add_argument(
        "--settings-json", default=None, help="DeploymentSettings as JSON (default: defaults)"
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when the parent (the gateway) dies"
    )
    return parser.parse_args(argv)


def _engine(settings: DeploymentSettings, model_path: str, model_name: str | None) -> Engine:
    """The engine ``settings.engine`` names (imported here: each pulls in heavy libraries).

    Every engine is built the same way: ``(model_path, model_name, settings)``.
    """
    name = model_name or os.path.basename(model_path)
    if settings.engine == "vllm":
        from chattune.serving.worker.vllm import VllmEngine

        return VllmEngine(model_path, name, settings)
    from chattune.serving.worker.continuous import ContinuousEngine

    return ContinuousEngine(model_path, name, settings)


class _NoProbes(logging.Filter):
    """Drop access-log lines of health probes (several a second while loading)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/health/" not in record.getMessage()


def _exit_when_load_fails(engine: Engine) -> None:
    """A model that cannot load is fatal: exit non-zero so the gateway reports it."""

    def watch() -> None:
        while not engine.is_ready():
            if engine.load_error:
                log.error("exiting: the model could not be loaded: %s", engine.load_error)
                os._exit(LOAD_FAILED_EXIT)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    main()
