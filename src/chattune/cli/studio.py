"""`chattune studio`: the local web app (jobs, data, models, endpoints, playground)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from chattune.cli.common import WorkspaceOpt, console, get_client
from chattune.errors import ValidationError

if TYPE_CHECKING:
    import uvicorn


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only there (``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def studio(
    port: int = typer.Option(8765, "--port", "-p", help="Port to listen on (0: any free one)"),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (default: this machine only)"
    ),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the URL in a browser"),
    data_dir: list[str] = typer.Option(
        [],
        "--data-dir",
        help="Another folder the studio may read data from (repeatable; default: only the "
        "folder it runs in)",
    ),
    reuse_token: bool = typer.Option(
        False, "--reuse-token", help="Let the printed URL log in more than once"
    ),
    workspace: str = WorkspaceOpt,
) -> None:
    """Serve the studio, a local web app over the SDK: jobs with live loss curves and
    evaluation reports, a job form with the CLI's validation, data reports, models with
    lineage, endpoints with traffic and keys, and a chat playground that streams.

    Prints a one-time URL with a fresh token: opening it starts a session (a cookie); the URL
    then stops working unless --reuse-token. Requests without a session or the token answer
    401; changes from another site or port answer 403. Data files are read only inside the
    folder it runs in and each --data-dir. Binds 127.0.0.1 unless --host says otherwise (warned:
    anyone who can reach the port and has the URL can use your workspace). Ctrl-C stops it.

    Example: chattune studio --port 8765
    """
    import uvicorn

    from chattune.studio import create_studio_app
    from chattune.studio.auth import allowed_hosts

    client = get_client(workspace)
    token = secrets.token_urlsafe(24)
    _check_folders(data_dir)
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    hosts = allowed_hosts(host, [shown])
    app = create_studio_app(client, token, data_dirs=data_dir, reuse_token=reuse_token, hosts=hosts)
    _warn_exposure(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    shown = f"[{shown}]" if ":" in shown else shown

    def announce() -> None:
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        url = f"http://{shown}:{bound}/?token={token}"
        console.print(f"chattune studio on workspace {client.workspace.root}\nopen: {url}")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    # MLflow takes seconds to import; a job page's curve reads it: import it while idle.
    threading.Thread(target=_import_quietly, args=("mlflow",), daemon=True).start()
    _run(server, announce)


def _warn_exposure(host: str) -> None:
    if not is_loopback(host):
        typer.echo(
            f"warning: the studio listens on {host}, not only this machine; anyone who can "
            "reach the port and has the URL can change your workspace",
            err=True,
        )


def _check_folders(folders: list[str]) -> None:
    for folder in folders:
        if not Path(folder).expanduser().is_dir():
            raise ValidationError(
                f"--data-dir {folder}: no such folder", "give an existing folder of data files"
            )


def _import_quietly(module: str) -> None:
    import contextlib
    import importlib

    # A failed warm-up only means the first curve waits for the import.
    with contextlib.suppress(Exception):
        importlib.import_module(module)


def _run(server: uvicorn.Server, announce: Callable[[], None]) -> None:
    """Serve until Ctrl-C; ``announce`` runs once the socket is bound (so port 0 works)."""
    import asyncio

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            announce()
        await task

    asyncio.run(main())


def register(app: typer.Typer) -> None:
    app.command("studio")(studio)
