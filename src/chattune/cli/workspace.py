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
        json: bool = JsonOpt,
    ) -> None:
        """Create a workspace: config, metadata DB, MLflow store, artifact folders.

        Example: chattune init ~/chattune-ws
        """
        from chattune.workspace import Workspace

        ws = Workspace.find(directory)
        info = {
            "workspace": str(ws.root),
            "database": str(ws.db_path),
            "mlflow_tracking_uri": ws.mlflow_uri,
        }
        if json:
            print_json(info)
            return
        console.print(f"workspace ready at [bold]{ws.root}[/]")
        console.print(f"  metadata   {ws.db_path}")
        console.print(f"  MLflow     {ws.mlflow_uri}  (mlflow ui --backend-store-uri ...)")
