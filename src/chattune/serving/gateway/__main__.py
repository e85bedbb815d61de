"""``python -m chattune.serving.gateway --workspace W --endpoint E``: one endpoint's gateway.

Started by :meth:`EndpointsAPI.create` in its own session, so deleting the endpoint can kill
the whole process group (gateway and workers) as a backstop.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, set up logging, serve until the endpoint is deleted."""
    parser = argparse.ArgumentParser(prog="python -m chattune.serving.gateway")
    parser.add_argument("--workspace", required=True, help="workspace folder")
    parser.add_argument("--endpoint", required=True, help="endpoint name")
    parser.add_argument("--node", default=None, help="run as an extra gateway of that name")
    parser.add_argument("--port", type=int, default=None, help="a node's port (default: free)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe is noise
    from chattune.serving.gateway.process import run_gateway
    from chattune.workspace import Workspace

    run_gateway(Workspace(Path(args.workspace)), args.endpoint, args.node, args.port)


if __name__ == "__main__":
    main()
