"""`broker`: deploy, follow, list, rotate and delete serverless model deployments through the broker, from a shell;
ask what a request would do (`whatif`) and decide on runs waiting for an approver (`approve`, `reject`).

Settings come from flags, else the environment: `--endpoint` / BROKER_ENDPOINT (else BROKER_URL, the name
`make run`'s .devstack/run.env uses), `--function-key` / BROKER_FUNCTION_KEY, `--scope` / BROKER_API_SCOPE. Sign-in
goes through azure-identity: with AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET set, a
ClientSecretCredential at AZURE_AUTHORITY_HOST (instance discovery off for an authority that is not a Microsoft
cloud's, such as the local emulator); otherwise DefaultAzureCredential (Azure CLI, managed identity, ...).

Results go to stdout, as tables and details for people or as the broker's JSON with `--output json`; progress
(one line per run step) and errors go to stderr. Exit codes: 0 done, 1 an error (the broker refused the call, the
network, sign-in), 2 bad usage or missing settings, 3 the request was Rejected (for `whatif`: would be), 4 the
run, rotation or deployment Failed, 5 still in flight when `--timeout` ran out (the run carries on; `broker status
RUN_ID --wait` follows it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.identity import AzureAuthorityHosts, ClientSecretCredential, DefaultAzureCredential

from deployment_broker_client import _output as output
from deployment_broker_client._client import BrokerClient
from deployment_broker_client._exceptions import BrokerError, BrokerNotFoundError, RunUnsuccessfulError
from deployment_broker_client._models import (
    TERMINAL_RUN_STATUSES,
    DeploymentPhase,
    KeyRotation,
    KeyRotationStatus,
    Run,
    RunStatus,
    WhatIfVerdict,
)
from deployment_broker_client._version import VERSION

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_FAILED = 4
EXIT_TIMEOUT = 5

ENDPOINT_SETTINGS = ("BROKER_ENDPOINT", "BROKER_URL")
FUNCTION_KEY_SETTING = "BROKER_FUNCTION_KEY"
SCOPE_SETTING = "BROKER_API_SCOPE"
MICROSOFT_AUTHORITIES = frozenset(
    {AzureAuthorityHosts.AZURE_PUBLIC_CLOUD, AzureAuthorityHosts.AZURE_CHINA, AzureAuthorityHosts.AZURE_GOVERNMENT}
)
DEFAULT_TOP = 100
WAIT_POLL_SECONDS = 1.0


class UsageError(Exception):
    """A setting is missing or an argument cannot be used; exit code 2."""


@dataclass(frozen=True)
class Settings:
    endpoint: str
    scope: str
    function_key: str | None

    @classmethod
    def resolve(cls, arguments: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        endpoint = arguments.endpoint or next((environ[name] for name in ENDPOINT_SETTINGS if environ.get(name)), "")
        scope = arguments.scope or environ.get(SCOPE_SETTING, "")
        if not endpoint:
            raise UsageError("no broker endpoint: pass --endpoint or set BROKER_ENDPOINT")
        if not scope:
            raise UsageError("no API scope: pass --scope or set BROKER_API_SCOPE (api://<app client id>/.default)")
        return cls(endpoint, scope, arguments.function_key or environ.get(FUNCTION_KEY_SETTING) or None)


def credential_from(environ: Mapping[str, str]) -> TokenCredential:
    """A ClientSecretCredential from AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET (and AZURE_AUTHORITY_HOST), else
    DefaultAzureCredential."""
    tenant, client, secret = (environ.get(f"AZURE_{name}") for name in ("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET"))
    if not (tenant and client and secret):
        return DefaultAzureCredential()
    authority = environ.get("AZURE_AUTHORITY_HOST") or None
    return ClientSecretCredential(
        tenant,
        client,
        secret,
        authority=authority,
        # Instance discovery asks login.microsoftonline.com about the authority, which knows no other.
        disable_instance_discovery=not _is_microsoft_authority(authority),
    )


def _is_microsoft_authority(authority: str | None) -> bool:
    if authority is None:
        return True
    host = urlsplit(authority if "//" in authority else f"https://{authority}").hostname or ""
    return host.lower() in MICROSOFT_AUTHORITIES


# -- output -------------------------------------------------------------------------------------------------------


@dataclass
class Console:
    """Where results (stdout) and progress and errors (stderr) go, in the chosen format."""

    json_output: bool
    out: TextIO
    err: TextIO

    def result(self, value: Any, text: Callable[[Any], str]) -> None:
        if self.json_output:
            document = [item.as_dict() for item in value] if isinstance(value, list) else value.as_dict()
            print(json.dumps(document, indent=2), file=self.out)
        else:
            print(text(value), file=self.out)

    def note(self, message: str) -> None:
        print(message, file=self.err, flush=True)


class StepPrinter:
    """Prints each run step once, as it is first seen: the progress lines of `--wait`."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._printed: dict[str, int] = {}

    def __call__(self, run: Run) -> None:
        for step in run.steps[self._printed.get(run.id, 0) :]:
            self._console.note(output.step_line(run, step))
        self._printed[run.id] = len(run.steps)


RUN_EXIT_CODES: dict[str, int] = {RunStatus.REJECTED: EXIT_REJECTED, RunStatus.FAILED: EXIT_FAILED}


def _run_exit_code(status: RunStatus | str) -> int:
    return RUN_EXIT_CODES.get(status, EXIT_OK)


# -- commands -----------------------------------------------------------------------------------------------------


def _deploy(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    poller = client.begin_deploy(
        arguments.workspace,
        arguments.model,
        endpoint_name=arguments.endpoint_name,
        content_safety=arguments.content_safety,
        ticket=arguments.ticket,
        tags=_tags(arguments.tag),
        allow_cross_region=True if arguments.allow_cross_region else None,
        idempotency_key=arguments.idempotency_key,
        progress_hook=StepPrinter(console) if arguments.wait else None,
    )
    return _finish(poller, arguments, console)


def _what_if(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    what_if = client.what_if(
        arguments.workspace,
        arguments.model,
        endpoint_name=arguments.endpoint_name,
        content_safety=arguments.content_safety,
        ticket=arguments.ticket,
        tags=_tags(arguments.tag),
        allow_cross_region=True if arguments.allow_cross_region else None,
    )
    console.result(what_if, output.what_if_detail)
    return EXIT_REJECTED if what_if.verdict == WhatIfVerdict.REJECTED else EXIT_OK


def _approve(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    run = client.approve_run(arguments.run_id, comment=arguments.comment)
    console.result(run, output.run_detail)
    return _run_exit_code(run.status)


def _reject(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    run = client.reject_run(arguments.run_id, comment=arguments.comment)
    console.result(run, output.run_detail)
    return EXIT_OK


def _delete(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    poller = client.begin_delete(
        arguments.deployment_id,
        delete_subscription=arguments.delete_subscription,
        progress_hook=StepPrinter(console) if arguments.wait else None,
    )
    return _finish(poller, arguments, console)


def _finish(poller: Any, arguments: argparse.Namespace, console: Console) -> int:
    """Without --wait, the run as accepted (or the deployment when there is none); with it, the run's end."""
    method = poller.polling_method()
    if not arguments.wait:
        if method.latest_run is None:
            console.result(poller.result(), output.deployment_detail)
        else:
            console.result(method.latest_run, output.run_detail)
        return EXIT_OK
    try:
        poller.wait(arguments.timeout)
        if not poller.done():
            run = method.latest_run
            console.note(f"still {run.status} after {arguments.timeout:g} s; follow it: broker status {run.id} --wait")
            console.result(run, output.run_detail)
            return EXIT_TIMEOUT
        deployment = poller.result()
    except RunUnsuccessfulError as error:
        reason = error.run_error.message if error.run_error else "no reason recorded"
        console.note(f"run {error.run.id} ended {error.run.status}: {reason}")
        console.result(error.run, output.run_detail)
        return _run_exit_code(error.run.status)
    console.result(deployment, output.deployment_detail)
    return EXIT_FAILED if deployment.status.phase == DeploymentPhase.FAILED else EXIT_OK


def _status(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    """A run, or when no run has that id, the deployment (run ids and deployment ids never coincide)."""
    try:
        run = client.get_run(arguments.id)
    except BrokerNotFoundError:
        if arguments.wait:
            raise
        deployment = client.get_deployment(arguments.id)
        console.result(deployment, output.deployment_detail)
        return EXIT_FAILED if deployment.status.phase == DeploymentPhase.FAILED else EXIT_OK
    if arguments.wait:
        run = _follow(client, run, arguments.timeout, StepPrinter(console))
        if not run.is_terminal:
            console.note(f"still {run.status} after {arguments.timeout:g} s")
            console.result(run, output.run_detail)
            return EXIT_TIMEOUT
    console.result(run, output.run_detail)
    return _run_exit_code(run.status)


def _follow(client: BrokerClient, run: Run, timeout: float | None, progress: StepPrinter) -> Run:
    deadline = None if timeout is None else time.monotonic() + timeout
    progress(run)
    while run.status not in TERMINAL_RUN_STATUSES and (deadline is None or time.monotonic() < deadline):
        time.sleep(WAIT_POLL_SECONDS)
        run = client.get_run(run.id)
        progress(run)
    return run


def _list(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    if arguments.runs:
        runs = client.list_runs(
            deployment_id=arguments.deployment,
            workspace_id=arguments.workspace,
            status=arguments.status,
            ticket=arguments.ticket,
        )
        console.result(_first(runs, arguments.top), output.runs_table)
    else:
        if arguments.deployment or arguments.status:
            raise UsageError("--deployment and --status filter runs: add --runs")
        deployments = client.list_deployments(
            workspace_id=arguments.workspace, model_id=arguments.model, phase=arguments.phase, ticket=arguments.ticket
        )
        console.result(_first(deployments, arguments.top), output.deployments_table)
    return EXIT_OK


def _rotate(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    rotation = client.rotate_keys(arguments.deployment_id, arguments.key)
    if arguments.wait:
        rotation = _await_rotation(client, arguments.deployment_id, rotation, arguments.timeout, console)
        if rotation.in_progress:
            console.note(f"rotation {rotation.id} still {rotation.status} after {arguments.timeout:g} s")
            console.result(rotation, output.rotation_detail)
            return EXIT_TIMEOUT
    console.result(rotation, output.rotation_detail)
    return EXIT_FAILED if rotation.status == KeyRotationStatus.FAILED else EXIT_OK


def _await_rotation(
    client: BrokerClient, deployment_id: str, rotation: KeyRotation, timeout: float | None, console: Console
) -> KeyRotation:
    """Poll the run the rotation is recorded on (the deployment's keysRunId) until the rotation ends."""
    deadline = None if timeout is None else time.monotonic() + timeout
    console.note(f"rotating the {rotation.key_type} key: {rotation.status}")
    while rotation.in_progress and (deadline is None or time.monotonic() < deadline):
        time.sleep(WAIT_POLL_SECONDS)
        keys_run_id = client.get_deployment(deployment_id).status.keys_run_id
        recorded = client.get_run(keys_run_id).key_rotation(rotation.id) if keys_run_id else None
        if recorded is not None and recorded.status != rotation.status:
            console.note(f"rotating the {recorded.key_type} key: {recorded.status}")
        rotation = recorded or rotation
    return rotation


def _findings(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    findings = client.list_findings(
        rule=arguments.rule,
        severity=arguments.severity,
        workspace_id=arguments.workspace,
        deployment_id=arguments.deployment,
        state=arguments.state,
    )
    console.result(_first(findings, arguments.top), output.findings_table)
    return EXIT_OK


def _models(client: BrokerClient, arguments: argparse.Namespace, console: Console) -> int:
    """The catalog as a project sees it; with --model, where that one model deploys (and whether the project's
    region offers it)."""
    if arguments.model:
        if arguments.publisher or arguments.name:
            raise UsageError("--publisher and --name filter the list: leave out --model")
        availability = client.get_model_availability(arguments.model, workspace_id=arguments.workspace)
        console.result(availability, output.availability_detail)
        return EXIT_OK
    if not arguments.workspace:
        raise UsageError("models lists the catalog for a project: pass --workspace (or --model for one model)")
    listed = client.list_models(arguments.workspace, publisher=arguments.publisher, name=arguments.name)
    console.result(_first(listed, arguments.top), output.models_table)
    return EXIT_OK


def _first(items: Iterable[Any], top: int) -> list[Any]:
    return list(itertools.islice(items, top))


def _tags(pairs: Sequence[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    tags = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise UsageError(f"--tag takes NAME=VALUE, not '{pair}'")
        tags[name] = value
    return tags


# -- arguments ----------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", help="the broker's URL (default: $BROKER_ENDPOINT, else $BROKER_URL)")
    common.add_argument("--function-key", help="the function key (default: $BROKER_FUNCTION_KEY)")
    common.add_argument("--scope", help="the broker API's scope, api://<app>/.default (default: $BROKER_API_SCOPE)")
    common.add_argument("--output", "-o", choices=("table", "json"), default="table", help="table (default) or json")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--wait", action="store_true", help="follow the run to its end, one line per step (stderr)")
    waiting.add_argument("--timeout", type=float, help="with --wait: give up waiting after this many seconds (exit 5)")

    root = argparse.ArgumentParser(
        prog="broker",
        description="Deploy Azure AI Foundry models as serverless API deployments through the deployment broker.",
        epilog="Exit codes: 0 done, 1 error, 2 usage, 3 Rejected, 4 Failed, 5 timed out waiting.",
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_changes(commands, [common, waiting])
    _add_reads(commands, [common, waiting])
    return root


def _add_changes(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    deploy = commands.add_parser("deploy", parents=parents, help="request a deployment")
    _add_request_arguments(deploy)
    deploy.add_argument("--idempotency-key", help="send the same key to make a retried request safe")
    deploy.set_defaults(handler=_deploy)

    what_if = commands.add_parser(
        "whatif", parents=parents[:1], help="what deploy would do now, writing nothing (exit 3: it would be rejected)"
    )
    _add_request_arguments(what_if)
    what_if.set_defaults(handler=_what_if)

    approve = commands.add_parser("approve", parents=parents[:1], help="approve a run waiting for an approver")
    approve.add_argument("run_id", metavar="RUN_ID")
    approve.add_argument("--comment", help="recorded on the run and sent with its events")
    approve.set_defaults(handler=_approve)

    reject = commands.add_parser("reject", parents=parents[:1], help="reject a run waiting for an approver")
    reject.add_argument("run_id", metavar="RUN_ID")
    reject.add_argument("--comment", required=True, help="why: recorded on the run and sent with its events")
    reject.set_defaults(handler=_reject)

    delete = commands.add_parser("delete", parents=parents, help="tear a deployment down")
    delete.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    delete.add_argument(
        "--delete-subscription", action="store_true", help="also delete the Marketplace subscription if unused"
    )
    delete.set_defaults(handler=_delete)

    rotate = commands.add_parser("rotate", parents=parents, help="regenerate one endpoint key")
    rotate.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    rotate.add_argument("--key", required=True, choices=("primary", "secondary"), help="the key to regenerate")
    rotate.set_defaults(handler=_rotate)


def _add_request_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--workspace", required=True, help="the project's ARM id")
    command.add_argument("--model", required=True, help="azureml://registries/<registry>/models/<name>")
    command.add_argument("--endpoint-name", help="the serverless endpoint's name (default: from the model's name)")
    command.add_argument("--content-safety", choices=("Enabled", "Disabled"))
    command.add_argument("--ticket", help="your reference, echoed in the run and its events")
    command.add_argument("--tag", action="append", metavar="NAME=VALUE", help="an endpoint tag (repeatable)")
    command.add_argument("--allow-cross-region", action="store_true", help="deploy into a hub region if need be")


def _add_reads(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    common, waiting = parents
    status = commands.add_parser("status", parents=[common, waiting], help="show a run or a deployment")
    status.add_argument("id", metavar="RUN_OR_DEPLOYMENT_ID")
    status.set_defaults(handler=_status)

    listing = commands.add_parser("list", parents=[common], help="list deployments (or runs, with --runs)")
    listing.add_argument("--runs", action="store_true", help="list runs instead of deployments")
    listing.add_argument("--workspace", help="only this project (ARM id)")
    listing.add_argument("--model", help="only this model (deployments)")
    listing.add_argument("--phase", choices=[phase.value for phase in DeploymentPhase], help="only this phase")
    listing.add_argument("--deployment", help="only runs of this deployment (with --runs)")
    listing.add_argument("--status", help="only runs in this status (with --runs)")
    listing.add_argument("--ticket", help="only those a request with this ticket reached")
    listing.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"at most this many (default {DEFAULT_TOP})")
    listing.set_defaults(handler=_list)

    findings = commands.add_parser("findings", parents=[common], help="list hygiene findings")
    findings.add_argument("--rule", help="only this rule (endpoint-unhealthy, secrets-missing, ...)")
    findings.add_argument("--severity", help="only this severity (critical, high, medium, low, info)")
    findings.add_argument("--state", help="open, resolved or pending")
    findings.add_argument("--workspace", help="only this project (ARM id)")
    findings.add_argument("--deployment", help="only findings about this deployment")
    findings.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"at most this many (default {DEFAULT_TOP})")
    findings.set_defaults(handler=_findings)

    models = commands.add_parser(
        "models", parents=[common], help="the models a project may deploy (or, with --model, where one deploys)"
    )
    models.add_argument("--workspace", help="the project (ARM id): list the catalog as it sees it")
    models.add_argument(
        "--model",
        help="instead: where this model deploys and how it is sold (with --workspace: "
        "whether that project's region offers it)",
    )
    models.add_argument("--publisher", help="only this publisher (meta, cohere, ...) or catalog family")
    models.add_argument("--name", help="only models whose name contains this")
    models.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"at most this many (default {DEFAULT_TOP})")
    models.set_defaults(handler=_models)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    client_factory: Callable[[Settings, Mapping[str, str]], BrokerClient] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code. `client_factory` builds the client (tests give one over a fake
    transport); by default it signs in with `credential_from(environ)`."""
    environ = os.environ if environ is None else environ
    arguments = parser().parse_args(argv)
    console = Console(arguments.output == "json", out or sys.stdout, err or sys.stderr)
    try:
        settings = Settings.resolve(arguments, environ)
        factory = client_factory or _signed_in_client
        with factory(settings, environ) as client:
            return arguments.handler(client, arguments, console)
    except UsageError as error:
        console.note(f"broker: {error}")
        return EXIT_USAGE
    except BrokerError as error:
        return _refused(error, console)
    except ClientAuthenticationError as error:
        console.note(f"broker: cannot sign in: {error.message}")
        return EXIT_ERROR
    except AzureError as error:
        console.note(f"broker: {error.message}")
        return EXIT_ERROR


def _refused(error: BrokerError, console: Console) -> int:
    """A refusal the broker recorded as a run is a rejected request (3); any other is an error (1)."""
    problem = error.problem
    if problem is None:
        console.note(f"broker: {error.message}")
        return EXIT_ERROR
    console.note(f"broker: {output.problem_text(problem)}")
    if console.json_output:
        print(json.dumps(problem.as_dict(), indent=2), file=console.out)
    return EXIT_REJECTED if problem.run_id else EXIT_ERROR


def _signed_in_client(settings: Settings, environ: Mapping[str, str]) -> BrokerClient:
    return BrokerClient(
        settings.endpoint, credential_from(environ), scope=settings.scope, function_key=settings.function_key
    )


if __name__ == "__main__":
    sys.exit(main())
