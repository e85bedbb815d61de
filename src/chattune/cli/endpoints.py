"""`chattune endpoints` and `chattune deployments`: serve registered models over HTTP.

Each command is one SDK call (``client.endpoints``) plus printing. Nothing heavy is imported
here; the SDK loads serving code when a command runs.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from chattune.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    err_console,
    get_client,
    print_json,
)
from chattune.errors import ValidationError

if TYPE_CHECKING:
    from chattune.serving.info import DeploymentInfo, EndpointInfo

app = typer.Typer(
    help="Online endpoints: a gateway with key auth and traffic routing.", no_args_is_help=True
)
deployments_app = typer.Typer(
    help="Deployments: a model served by workers behind an endpoint.", no_args_is_help=True
)

_STYLE = {
    "running": "green",
    "ready": "green",
    "creating": "cyan",
    "failed": "red",
    "dead": "red",
    "unavailable": "red",
    "degraded": "yellow",
    "unhealthy": "yellow",
    "deleting": "yellow",
}
EndpointOpt = typer.Option(..., "--endpoint", "-e", help="Endpoint name.")


def _status(text: str) -> str:
    return f"[{_STYLE.get(text, 'white')}]{text}[/]"


def _print_endpoint(info: EndpointInfo) -> None:
    console.print(f"endpoint [bold]{info.name}[/]: {_status(info.status)}")
    console.print(f"  scoring uri:      {info.scoring_uri or '-'}")
    console.print(f"  openai base url:  {info.openai_base_url or '-'}")
    console.print(f"  auth:             {info.auth_mode} (chattune endpoints get-keys {info.name})")
    console.print(f"  deployments:      {', '.join(info.deployments) or '-'}")
    console.print(f"  traffic:          {_weights(info.traffic)}")
    if info.mirror_traffic:
        console.print(f"  mirror traffic:   {_weights(info.mirror_traffic)}")
    if info.error:
        console.print(f"  [red]error:[/] {info.error}")


def _warn_exposure(info: EndpointInfo) -> None:
    """On stderr (``--json`` output stays clean): the gateway listens beyond this machine."""
    if info.exposure:
        err_console.print(f"[yellow]warning:[/] {info.exposure}", markup=True, highlight=False)


def _weights(weights: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(weights.items())) or "(none)"


def parse_weights(items: Iterable[str], option: str = "--traffic") -> dict[str, int]:
    """``["blue=90", "green=10"]`` (or ``["blue=90 green=10"]``) as ``{"blue": 90, ...}``.

    Only the syntax is checked here; the SDK checks names and sums.
    """
    weights: dict[str, int] = {}
    for item in (part for text in items for part in text.replace(",", " ").split()):
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise ValidationError(
                f"{option} {item!r}: expected NAME=PERCENT", f"write e.g. {option} demo=100"
            )
        weights[name] = int(value)
    return weights


# --- endpoints ------------------------------------------------------------------------------


@app.command("create")
def create(
    name: str = typer.Argument(..., help="3-32 letters, digits or '-'."),
    auth_mode: str = typer.Option("key", "--auth-mode", help="Only 'key' for now."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Return once the gateway is started."),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Create an endpoint: starts its gateway process and waits until it listens.

    Example: chattune endpoints create my-ep
    """
    client = get_client(workspace)
    with console.status(f"starting gateway of endpoint {name}...", spinner="dots"):
        info = client.endpoints.create(name, auth_mode=auth_mode, wait=not no_wait)
    _warn_exposure(info)
    if json:
        print_json(info.to_dict())
    else:
        _print_endpoint(info)
        console.print(f"next: chattune deployments create demo --endpoint {name} --model M:V")


@app.command("start")
def start(
    name: str | None = typer.Argument(None, help="An endpoint whose gateway is dead."),
    all_: bool = typer.Option(
        False, "--all", help="Every dead endpoint (at login or boot: examples/systemd)."
    ),
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Return once the gateway is started, not when it is ready."
    ),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Bring back a dead endpoint's gateway: the same port (when free), keys, deployments and
    traffic. Waits until its deployments are ready again. With --all, every dead endpoint;
    exits 1 when one of them did not come back.

    Example: chattune endpoints start my-ep
    """
    if (name is None) == (not all_):
        raise ValidationError(
            "give one endpoint name, or --all", "e.g. `chattune endpoints start my-ep`"
        )
    client = get_client(workspace)
    if all_:
        with console.status("starting every dead endpoint...", spinner="dots"):
            infos = client.endpoints.start_all(wait=not no_wait)
        _print_started(infos, json)
        return
    assert name is not None  # one of the two, checked above
    with console.status(f"starting gateway of endpoint {name}...", spinner="dots"):
        info = client.endpoints.start(name, wait=not no_wait)
    _warn_exposure(info)
    if json:
        print_json(info.to_dict())
    else:
        _print_endpoint(info)


def _print_started(infos: list[EndpointInfo], json: bool) -> None:
    if json:
        print_json([i.to_dict() for i in infos])
    elif not infos:
        console.print("no dead endpoint: nothing to start")
    for info in infos if not json else []:
        console.print(f"{info.name}: {_status(info.status)} {info.scoring_uri or ''}")
        if info.error:
            err_console.print(f"  error: {info.error}", markup=False)
    if any(i.error for i in infos):
        raise typer.Exit(1)


@app.command("list")
def list_(workspace: str = WorkspaceOpt, json: bool = JsonOpt) -> None:
    """List endpoints with status, URL and traffic.

    Example: chattune endpoints list --json
    """
    infos = get_client(workspace).endpoints.list()
    if json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("name", "status", "scoring uri", "traffic", "deployments")
    for i in infos:
        table.add_row(
            i.name,
            _status(i.status),
            i.scoring_uri or "-",
            _weights(i.traffic),
            ", ".join(i.deployments) or "-",
        )
    console.print(table)


@app.command("show")
def show(
    name: str,
    lineage: bool = typer.Option(
        False,
        "--lineage",
        help="Deployment → model version → job → base model → data sha256 → parameters → metrics",
    ),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Show an endpoint (a gateway that died shows as 'dead'), or its models' lineage.

    Example: chattune endpoints show my-ep --lineage --json
    """
    if lineage:
        from chattune.cli.models import print_lineage

        found = get_client(workspace).models.endpoint_lineage(name)
        if json:
            print_json(found)
        else:
            print_lineage(found)
        return
    info = get_client(workspace).endpoints.get(name)
    if json:
        print_json(info.to_dict())
    else:
        _print_endpoint(info)


@app.command("get-keys")
def get_keys(name: str, workspace: str = WorkspaceOpt, json: bool = JsonOpt) -> None:
    """Print the endpoint's primary and secondary keys (send 'Authorization: Bearer KEY').

    Example: chattune endpoints get-keys my-ep --json
    """
    keys = get_client(workspace).endpoints.get_keys(name)
    if json:
        print_json(keys)
    else:
        for kind, key in keys.items():
            typer.echo(f"{kind}: {key}")


@app.command("regenerate-keys")
def regenerate_keys(
    name: str,
    key_type: str = typer.Option("primary", "--key-type", help="primary or secondary"),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Replace one key; the old key stops working at once.

    Example: chattune endpoints regenerate-keys my-ep --key-type secondary
    """
    keys = get_client(workspace).endpoints.regenerate_keys(name, key_type)
    if json:
        print_json(keys)
    else:
        console.print(f"regenerated the {key_type} key of {name}: {keys[f'{key_type}_key']}")


@app.command("update")
def update(
    name: str,
    traffic: list[str] = typer.Option(
        None,
        "--traffic",
        help="NAME=PERCENT, repeatable; sum 100. Replaces the whole live traffic map.",
    ),
    mirror_traffic: list[str] = typer.Option(
        None,
        "--mirror-traffic",
        help="NAME=PERCENT "
        "(total <= 50) copied to a deployment with no "
        "live traffic; its answers are dropped.",
    ),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Set how requests are split across deployments.

    Example: chattune endpoints update my-ep --traffic demo=100
    Example: chattune endpoints update my-ep --traffic blue=100 --mirror-traffic green=10
    """
    live = parse_weights(traffic, "--traffic") if traffic else None
    mirror = parse_weights(mirror_traffic, "--mirror-traffic") if mirror_traffic else None
    if live is None and mirror is None:
        raise ValidationError(
            "nothing to update", "give --traffic NAME=PERCENT and/or --mirror-traffic NAME=PERCENT"
        )
    info = get_client(workspace).endpoints.update(name, traffic=live, mirror_traffic=mirror)
    if json:
        print_json(info.to_dict())
    else:
        _print_endpoint(info)


@app.command("invoke")
def invoke(
    name: str,
    request_file: str = typer.Option(
        ...,
        "--request-file",
        "-r",
        help="JSON request body: /score shape, or OpenAI shape with 'messages'.",
    ),
    deployment: str = typer.Option(
        None, "--deployment", "-d", help="Send to this deployment (azureml-model-deployment)."
    ),
    workspace: str = WorkspaceOpt,
) -> None:
    """Call the endpoint over HTTP with its key and print the JSON answer.

    Example: chattune endpoints invoke my-ep --request-file examples/sample_score.json
    """
    answer = get_client(workspace).endpoints.invoke(name, request_file, deployment=deployment)
    typer.echo(jsonlib.dumps(answer, indent=2, ensure_ascii=False))


@app.command("logs")
def logs(
    name: str,
    deployment: str = typer.Option(
        None, "--deployment", "-d", help="A deployment's worker log instead of the gateway log."
    ),
    lines: int = typer.Option(100, "--lines", "-n", help="How many last lines."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Print the end of the gateway log (or of a deployment's log).

    Example: chattune endpoints logs my-ep --deployment demo -n 50
    """
    typer.echo(get_client(workspace).endpoints.get_logs(name, deployment, lines))


@app.command("delete")
def delete(
    name: str,
    no_wait: bool = typer.Option(False, "--no-wait", help="Signal the gateway and return."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Stop the gateway and all its workers; remove keys, logs and records.

    Example: chattune endpoints delete my-ep
    """
    with console.status(f"deleting endpoint {name}...", spinner="dots"):
        get_client(workspace).endpoints.delete(name, wait=not no_wait)
    console.print(f"deleted endpoint {name}")


# --- deployments ----------------------------------------------------------------------------


def _print_deployment(info: DeploymentInfo) -> None:
    s = info.settings
    console.print(f"deployment [bold]{info.name}[/] on {info.endpoint}: {_status(info.status)}")
    console.print(f"  model:     {info.model} ({info.model_path})")
    console.print(
        f"  settings:  instance_count={s.instance_count} request_timeout_ms="
        f"{s.request_timeout_ms} max_concurrent_requests_per_instance="
        f"{s.concurrency} liveness_initial_delay="
        f"{s.liveness_probe.initial_delay:g}s engine={s.engine}"
    )
    for inst in info.instances:
        console.print(
            f"  instance {inst['index']}: pid {inst['pid']} port {inst['port']} "
            f"{inst['state']} (restarts {inst['restarts']})"
        )
    if info.error:
        console.print(f"  [red]error:[/] {info.error}")


# Settings default to None: only what the user gives is passed, the SDK's model has defaults.
InstanceCountOpt = typer.Option(None, "--instance-count", help="Worker processes.")
RequestTimeoutOpt = typer.Option(
    None, "--request-timeout-ms", help="Most milliseconds a request may take (else 408)."
)
LivenessDelayOpt = typer.Option(
    None,
    "--liveness-initial-delay",
    help="Most seconds a worker may take to load; ready is reported as soon as it has.",
)
MaxConcurrentOpt = typer.Option(
    None,
    "--max-concurrent-requests",
    help="max_concurrent_requests_per_instance (default: --max-batch-size, so they batch).",
)
QueueWaitOpt = typer.Option(
    None, "--max-queue-wait-ms", help="Most milliseconds a request waits for a slot (else 429)."
)
BatchSizeOpt = typer.Option(
    None, "--max-batch-size", help="Rows of a worker's running batch (default 16)."
)
EngineOpt = typer.Option(None, "--engine", help="transformers (default) or vllm.")
DtypeOpt = typer.Option(
    None, "--dtype", help="auto (default: bf16 where measured faster), float32 or bfloat16."
)


@deployments_app.command("create")
def create_deployment(
    name: str = typer.Argument(..., help="Deployment name (3-32 letters, digits or '-')."),
    endpoint: str = EndpointOpt,
    model: str = typer.Option(
        ..., "--model", "-m", help="Registered model NAME:VERSION or NAME@label."
    ),
    instance_count: int | None = InstanceCountOpt,
    request_timeout_ms: int | None = RequestTimeoutOpt,
    liveness_initial_delay: float | None = LivenessDelayOpt,
    max_concurrent: int | None = MaxConcurrentOpt,
    max_queue_wait_ms: int | None = QueueWaitOpt,
    max_batch_size: int | None = BatchSizeOpt,
    engine: str | None = EngineOpt,
    dtype: str | None = DtypeOpt,
    no_wait: bool = typer.Option(False, "--no-wait", help="Return before the model is loaded."),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Deploy a registered model on an endpoint and wait until it is ready (0% traffic).

    New deployments get no live traffic (as in Azure ML): send traffic with
    `chattune endpoints update E --traffic NAME=100`, or target it with --deployment.

    Settings not given keep their defaults (see DeploymentSettings in the SDK).

    Example: chattune deployments create demo --endpoint my-ep --model phi3-ultrachat:1
    """
    given: dict[str, Any] = {
        "instance_count": instance_count,
        "request_timeout_ms": request_timeout_ms,
        "liveness_initial_delay": liveness_initial_delay,
        "max_concurrent_requests_per_instance": max_concurrent,
        "max_queue_wait_ms": max_queue_wait_ms,
        "max_batch_size": max_batch_size,
        "engine": engine,
        "dtype": dtype,
    }
    client = get_client(workspace)
    with console.status(f"creating deployment {name}...", spinner="dots") as status:

        def progress(info: DeploymentInfo, waited: float) -> None:
            states = ", ".join(i["state"] for i in info.instances) or "starting"
            status.update(f"deployment {name}: {info.status} ({states}) {waited:.0f}s")

        info = client.endpoints.create_deployment(
            endpoint,
            name,
            model,
            wait=not no_wait,
            progress=progress,
            **{key: value for key, value in given.items() if value is not None},
        )
    if json:
        print_json(info.to_dict())
        return
    _print_deployment(info)
    console.print(f"next: chattune endpoints update {endpoint} --traffic {name}=100")


@deployments_app.command("update")
def update_deployment(
    name: str = typer.Argument(..., help="Deployment name."),
    endpoint: str = EndpointOpt,
    instance_count: int | None = InstanceCountOpt,
    request_timeout_ms: int | None = RequestTimeoutOpt,
    max_concurrent: int | None = MaxConcurrentOpt,
    max_queue_wait_ms: int | None = QueueWaitOpt,
    liveness_initial_delay: float | None = LivenessDelayOpt,
    max_batch_size: int | None = BatchSizeOpt,
    dtype: str | None = DtypeOpt,
    no_wait: bool = typer.Option(False, "--no-wait", help="Return before the new workers serve."),
    workspace: str = WorkspaceOpt,
    json: bool = JsonOpt,
) -> None:
    """Change a live deployment's settings without failing a request (rolling).

    Workers with the new settings start beside the serving ones and take over once all are
    ready; the old ones stop after their last request. Settings not given keep their values.
    If the new workers fail, the old ones keep serving and the command fails with the reason.

    Example: chattune deployments update demo --endpoint my-ep --instance-count 2
    """
    given: dict[str, Any] = {
        "instance_count": instance_count,
        "request_timeout_ms": request_timeout_ms,
        "max_concurrent_requests_per_instance": max_concurrent,
        "max_queue_wait_ms": max_queue_wait_ms,
        "liveness_initial_delay": liveness_initial_delay,
        "max_batch_size": max_batch_size,
        "dtype": dtype,
    }
    client = get_client(workspace)
    with console.status(f"updating deployment {name}...", spinner="dots") as status:

        def progress(info: DeploymentInfo, waited: float) -> None:
            states = ", ".join(i["state"] for i in info.instances) or "starting"
            status.update(f"deployment {name}: rolling ({states}) {waited:.0f}s")

        info = client.endpoints.update_deployment(
            endpoint,
            name,
            wait=not no_wait,
            progress=progress,
            **{key: value for key, value in given.items() if value is not None},
        )
    if json:
        print_json(info.to_dict())
        return
    _print_deployment(info)


@deployments_app.command("list")
def list_deployments(
    endpoint: str = EndpointOpt, workspace: str = WorkspaceOpt, json: bool = JsonOpt
) -> None:
    """List an endpoint's deployments.

    Example: chattune deployments list --endpoint my-ep
    """
    infos = get_client(workspace).endpoints.list_deployments(endpoint)
    if json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("name", "status", "model", "instances")
    for i in infos:
        ready = sum(x["state"] == "ready" for x in i.instances)
        table.add_row(
            i.name, _status(i.status), i.model, f"{ready}/{i.settings.instance_count} ready"
        )
    console.print(table)


@deployments_app.command("show")
def show_deployment(
    name: str, endpoint: str = EndpointOpt, workspace: str = WorkspaceOpt, json: bool = JsonOpt
) -> None:
    """Show a deployment: model, settings, instances, last error.

    Example: chattune deployments show demo --endpoint my-ep
    """
    info = get_client(workspace).endpoints.get_deployment(endpoint, name)
    if json:
        print_json(info.to_dict())
    else:
        _print_deployment(info)


@deployments_app.command("logs")
def deployment_logs(
    name: str,
    endpoint: str = EndpointOpt,
    lines: int = typer.Option(100, "--lines", "-n", help="How many last lines."),
    workspace: str = WorkspaceOpt,
) -> None:
    """Print the end of a deployment's worker log.

    Example: chattune deployments logs demo --endpoint my-ep -n 50
    """
    typer.echo(get_client(workspace).endpoints.get_logs(endpoint, name, lines))


@deployments_app.command("delete")
def delete_deployment(
    name: str, endpoint: str = EndpointOpt, workspace: str = WorkspaceOpt
) -> None:
    """Stop a deployment's workers and remove it (move its traffic away first).

    Example: chattune deployments delete demo --endpoint my-ep
    """
    with console.status(f"deleting deployment {name}...", spinner="dots"):
        get_client(workspace).endpoints.delete_deployment(endpoint, name)
    console.print(f"deleted deployment {name} of endpoint {endpoint}")


def _register_compare_commands() -> None:
    from chattune.cli import endpoints_compare

    app.command("mirror-pairs")(endpoints_compare.mirror_pairs)
    app.command("compare")(endpoints_compare.compare)


_register_compare_commands()
