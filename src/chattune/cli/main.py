"""`chattune` entry point: the typer app with one sub-app per noun.

Heavy imports (torch, transformers, mlflow) happen inside commands, never here, so
``chattune --help`` stays fast.
"""

from __future__ import annotations

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
