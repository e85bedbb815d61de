"""`chattune init`: create the workspace folder."""

from __future__ import annotations

import typer

from chattune.cli.common import JsonOpt, console, print_json


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        directory: str = typer.Argument(
            None, help="Workspace folder [default: $CHATTUNE_WORKSPACE or ./.chattune]"
        ),
        database: str = typer.Option(
            None,
            "--database",
            help="Metadata database URI [default: sqlite:///<DIR>/chattune.db]; "
            "e.g. postgresql://user@host:5432/chattune for a team; a password in it is kept "
            "in DIR/database.password (0600), never in config.yaml",
        ),
        json: bool = JsonOpt,
    ) -> None:
        """Create a workspace: config, metadata DB, MLflow store, artifact folders.

        Example: chattune init ~/chattune-ws
        """
        from chattune.client import Client

        ws = Client.init(directory, database=database).workspace
        info = {
            "workspace": str(ws.root),
            "database": ws.database_uri,
            "mlflow_tracking_uri": ws.mlflow_uri,
            "database_password": ws.password_source(),
        }
        if json:
            print_json(info)
            return
        console.print(f"workspace ready at [bold]{ws.root}[/]")
        console.print(f"  metadata   {ws.database_uri}")
        console.print(f"  MLflow     {ws.mlflow_uri}  (mlflow ui --backend-store-uri ...)")
        if info["database_password"]:
            console.print(f"  password   {info['database_password']}")
