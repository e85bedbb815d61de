"""`chattune` entry point: the typer app with one sub-app per noun.

Heavy imports (torch, transformers, mlflow) happen inside commands, never here, so
``chattune --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from chattune.errors import ChattuneError

app = typer.Typer(
    name="chattune",
    help="Fine-tune chat models and serve them, on your own machines.\n\nExample: chattune demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from chattune.cli import (
        assets,
        compute,
        data,
        demo,
        endpoints,
        engines,
        jobs,
        models,
        studio,
        workspace,
    )

    workspace.register(app)
    app.add_typer(assets.app, name="assets")
    app.add_typer(models.app, name="models")
    app.add_typer(compute.app, name="compute")
    app.add_typer(data.app, name="data")
    app.add_typer(jobs.app, name="jobs")
    app.add_typer(endpoints.app, name="endpoints")
    app.add_typer(endpoints.deployments_app, name="deployments")
    app.add_typer(engines.app, name="engines")
    demo.register(app)
    studio.register(app)


def main() -> None:
    """Run the CLI; a ChattuneError becomes one line on stderr and a non-zero exit."""
    _register()
    try:
        app()
    except ChattuneError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # not a ChattuneError: a bug, or an environment we did not map
        if os.environ.get("CHATTUNE_DEBUG") == "1":
            raise
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    """What went wrong in one line; the traceback goes to a file the line names (a read-only
    or full disk, the usual cause outside a bug, is said as such)."""
    import errno
    import tempfile
    import traceback

    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.errno in (errno.EROFS, errno.ENOSPC):
            where = f" ({cause.filename})" if cause.filename else ""
            return f"cannot write{where}: {cause.strerror} (fix: free space or make it writable)"
        if "readonly database" in str(cause) or "read-only file system" in str(cause).lower():
            return (
                "the workspace is not writable (fix: make it writable, or point "
                "CHATTUNE_WORKSPACE at a writable folder)"
            )
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="chattune-error-", suffix=".log", delete=False
        ) as f:
            f.write("".join(traceback.format_exception(exc)))
        saved = f"; traceback in {f.name}"
    except OSError:
        saved = "; run again with CHATTUNE_DEBUG=1 for the traceback"
    return f"internal error: {type(exc).__name__}: {first}{saved} (please report it)"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
