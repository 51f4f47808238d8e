"""BrokerClient: the broker's REST API as an Azure SDK client, on an azure-core pipeline.

Every request carries the function key (`x-functions-key`) and an Entra ID bearer token for the broker's API, which
App Service Easy Auth checks before the app sees the request. The pipeline is azure-core's: retries with backoff and
Retry-After, a User-Agent of `azsdk-python-deployment-broker-client/<version>`, request ids, logging with secrets
redacted, distributed tracing. Long-running operations are `begin_*` methods returning `LROPoller`s; lists are
`ItemPaged`, following the broker's `nextLink`; errors are BrokerError (an HttpResponseError) with the problem.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import AzureKeyCredential, TokenCredential
from azure.core.paging import ItemPaged
from azure.core.pipeline.policies import (
    AzureKeyCredentialPolicy,
    BearerTokenCredentialPolicy,
    ContentDecodePolicy,
    CustomHookPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
    RedirectPolicy,
    RequestIdPolicy,
    RetryPolicy,
    SensitiveHeaderCleanupPolicy,
    UserAgentPolicy,
)
from azure.core.polling import LROPoller
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.tracing.decorator import distributed_trace

from deployment_broker_client._exceptions import error_from
from deployment_broker_client._models import (
    Deployment,
    DeploymentPhase,
    Finding,
    KeyRotation,
    KeyType,
    ModelAvailability,
    ModelListing,
    Run,
    RunStatus,
    WhatIf,
)
from deployment_broker_client._policies import LoopbackHttpPolicy
from deployment_broker_client._polling import ProgressHook, RunPollingMethod
from deployment_broker_client._version import VERSION

FUNCTION_KEY_HEADER = "x-functions-key"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
ROUTE_PREFIX = "/api"  # the app's host.json routePrefix
SDK_MONIKER = f"deployment-broker-client/{VERSION}"
DEFAULT_POLLING_INTERVAL = 1.0
# Headers worth seeing in HTTP logs; every other header (the function key, the token) is logged as REDACTED.
LOGGED_HEADERS = frozenset({"Operation-Location", "Location", "Retry-After", IDEMPOTENCY_KEY_HEADER})
_Item = TypeVar("_Item")


class BrokerClient:
    """A client for the Serverless Deployment Broker.

    :param endpoint: the function app's URL, e.g. `https://<app>.azurewebsites.net` (`http://127.0.0.1:7071` locally:
        plain HTTP is accepted for loopback only).
    :param credential: an azure-identity credential (DefaultAzureCredential, ClientSecretCredential, ...).
    :keyword scope: the broker API's scope, `api://<app client id>/.default` (`BROKER_API_SCOPE` locally).
    :keyword function_key: the app's function key (a str or an AzureKeyCredential, whose key can be updated).
    :keyword polling_interval: seconds between polls of a run when the broker sends no Retry-After (default 1).

    Other keywords configure the azure-core pipeline as in every Azure SDK client: `transport`, `retry_total`,
    `logging_enable`, `user_agent`, `connection_verify`, `proxies`, ...
    """

    def __init__(
        self,
        endpoint: str,
        credential: TokenCredential,
        *,
        scope: str,
        function_key: str | AzureKeyCredential | None = None,
        polling_interval: float = DEFAULT_POLLING_INTERVAL,
        **kwargs: Any,
    ) -> None:
        if not endpoint:
            raise ValueError("endpoint is required: the broker's URL, e.g. https://<app>.azurewebsites.net")
        if not scope:
            raise ValueError("scope is required: the broker API's scope, api://<app client id>/.default")
        self._endpoint = endpoint.rstrip("/")
        self._api_base = self._endpoint + ROUTE_PREFIX
        self._polling_interval = polling_interval
        key = AzureKeyCredential(function_key) if isinstance(function_key, str) else function_key
        http_logging = HttpLoggingPolicy(**kwargs)
        http_logging.allowed_header_names.update(LOGGED_HEADERS)
        policies = [
            RequestIdPolicy(**kwargs),
            HeadersPolicy(**kwargs),
            UserAgentPolicy(sdk_moniker=SDK_MONIKER, **kwargs),
            ProxyPolicy(**kwargs),
            ContentDecodePolicy(**kwargs),
            RedirectPolicy(**kwargs),
            RetryPolicy(**kwargs),
            *([AzureKeyCredentialPolicy(key, FUNCTION_KEY_HEADER)] if key is not None else []),
            LoopbackHttpPolicy(),
            BearerTokenCredentialPolicy(credential, scope, **kwargs),
            CustomHookPolicy(**kwargs),
            NetworkTraceLoggingPolicy(**kwargs),
            DistributedTracingPolicy(**kwargs),
            SensitiveHeaderCleanupPolicy(
                blocked_redirect_headers=["Authorization", "x-ms-authorization-auxiliary", FUNCTION_KEY_HEADER],
                **kwargs,
            ),
            http_logging,
        ]
        self._client: PipelineClient = PipelineClient(base_url=self._endpoint, policies=policies, **kwargs)

    # -- deployments ------------------------------------------------------------------------------------------------

    @distributed_trace
    def begin_deploy(
        self,
        workspace_id: str,
        model_id: str,
        *,
        endpoint_name: str | None = None,
        content_safety: str | None = None,
        ticket: str | None = None,
        tags: Mapping[str, str] | None = None,
        allow_cross_region: bool | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> LROPoller[Deployment]:
        """Request the deployment of `model_id` (`azureml://registries/<registry>/models/<name>`) into the project
        `workspace_id` (its ARM id), and poll the run that makes it.

        The poller's result is the deployment, Ready. A deployment already Ready as asked completes at once; a run
        in flight for the same spec is joined. A request the broker refuses before starting (a preflight check, a
        conflicting spec) raises BrokerError with the problem, whose `run_id` names the Rejected run recording it; a
        run that ends Rejected or Failed makes `result()` raise RunUnsuccessfulError.

        :keyword idempotency_key: makes a retried call safe; a fresh one is generated when omitted, so the
            pipeline's own retries never start a second run.
        :keyword progress_hook: called with each run record whose status changed (from the polling thread).
        :keyword polling_interval: seconds between polls, for this operation.
        :keyword continuation_token: resume a poller saved with `poller.continuation_token()`; nothing is sent.
        """
        body = _deployment_body(
            workspace_id,
            model_id,
            endpoint_name=endpoint_name,
            content_safety=content_safety,
            ticket=ticket,
            tags=tags,
            allow_cross_region=allow_cross_region,
        )
        headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key or str(uuid.uuid4())}
        return self._begin(HttpRequest("POST", self._url("deployments"), json=body, headers=headers), **kwargs)

    @distributed_trace
    def what_if(
        self,
        workspace_id: str,
        model_id: str,
        *,
        endpoint_name: str | None = None,
        content_safety: str | None = None,
        ticket: str | None = None,
        tags: Mapping[str, str] | None = None,
        allow_cross_region: bool | None = None,
        **kwargs: Any,
    ) -> WhatIf:
        """What `begin_deploy` with these arguments would do now, writing nothing: the verdict (`allowed`,
        `rejected`, `needsApproval`), every preflight check's outcome and the plan of Azure writes."""
        body = _deployment_body(
            workspace_id,
            model_id,
            endpoint_name=endpoint_name,
            content_safety=content_safety,
            ticket=ticket,
            tags=tags,
            allow_cross_region=allow_cross_region,
        )
        response = self._send(HttpRequest("POST", self._url("deployments/what-if"), json=body), **kwargs)
        return WhatIf.from_dict(response.json())

    @distributed_trace
    def get_deployment(self, deployment_id: str, **kwargs: Any) -> Deployment:
        response = self._send(HttpRequest("GET", self._url("deployments", deployment_id)), **kwargs)
        return Deployment.from_dict(response.json())

    @distributed_trace
    def list_deployments(
        self,
        *,
        workspace_id: str | None = None,
        model_id: str | None = None,
        phase: DeploymentPhase | str | None = None,
        ticket: str | None = None,
        results_per_page: int | None = None,
        **kwargs: Any,
    ) -> ItemPaged[Deployment]:
        filters = {"workspaceId": workspace_id, "modelId": model_id, "phase": phase, "ticket": ticket}
        return self._paged("deployments", filters, results_per_page, Deployment.from_dict, **kwargs)

    @distributed_trace
    def begin_repair(self, deployment_id: str, **kwargs: Any) -> LROPoller[Deployment]:
        """Reconcile the deployment with Azure again: a repair run re-makes only what Azure lacks (a deleted
        Marketplace subscription, the endpoint, the key secrets). Completes at once when nothing is missing. Takes
        the keywords of `begin_deploy`'s poller."""
        return self._begin(HttpRequest("POST", self._url("deployments", deployment_id, action="repair")), **kwargs)

    @distributed_trace
    def begin_delete(
        self, deployment_id: str, *, delete_subscription: bool = False, **kwargs: Any
    ) -> LROPoller[Deployment]:
        """Tear the deployment down (endpoint, key secrets, and with `delete_subscription` the Marketplace
        subscription when no other endpoint uses it) and poll the delete run. The result is the deployment,
        Deleted; one already deleted completes at once. Takes the keywords of `begin_deploy`'s poller."""
        params = {"deleteSubscription": "true"} if delete_subscription else {}
        return self._begin(HttpRequest("DELETE", self._url("deployments", deployment_id), params=params), **kwargs)

    @distributed_trace
    def rotate_keys(self, deployment_id: str, key_type: KeyType | str, **kwargs: Any) -> KeyRotation:
        """Regenerate one endpoint key (`primary` or `secondary`; the other keeps working) and store it as a new
        version of its Key Vault secret. Returns the rotation as accepted (`Pending`); it is recorded on the run
        whose secrets hold the keys (`deployment.status.keys_run_id`), where it ends `Rotated` or `Failed`."""
        request = HttpRequest(
            "POST", self._url("deployments", deployment_id, action="rotate-keys"), json={"keyType": str(key_type)}
        )
        return KeyRotation.from_dict(self._send(request, **kwargs).json())

    # -- runs -------------------------------------------------------------------------------------------------------

    @distributed_trace
    def get_run(self, run_id: str, **kwargs: Any) -> Run:
        return Run.from_dict(self._send(HttpRequest("GET", self._url("runs", run_id)), **kwargs).json())

    @distributed_trace
    def list_runs(
        self,
        *,
        deployment_id: str | None = None,
        workspace_id: str | None = None,
        status: RunStatus | str | None = None,
        ticket: str | None = None,
        results_per_page: int | None = None,
        **kwargs: Any,
    ) -> ItemPaged[Run]:
        filters = {"deploymentId": deployment_id, "workspaceId": workspace_id, "status": status, "ticket": ticket}
        return self._paged("runs", filters, results_per_page, Run.from_dict, **kwargs)

    @distributed_trace
    def approve_run(self, run_id: str, *, comment: str | None = None, **kwargs: Any) -> Run:
        """Approve a run waiting in `PendingApproval` (as an approver); it moves on to its preflight checks. Deciding
        again as already decided answers the run as it is; a run not waiting raises BrokerConflictError."""
        return self._decide(run_id, "approve", comment, **kwargs)

    @distributed_trace
    def reject_run(self, run_id: str, *, comment: str, **kwargs: Any) -> Run:
        """Reject a run waiting in `PendingApproval`, saying why; it ends Rejected and nothing is made in Azure."""
        return self._decide(run_id, "reject", comment, **kwargs)

    # -- models and hygiene -----------------------------------------------------------------------------------------

    @distributed_trace
    def list_models(
        self,
        workspace_id: str,
        *,
        publisher: str | None = None,
        name: str | None = None,
        results_per_page: int | None = None,
        **kwargs: Any,
    ) -> ItemPaged[ModelListing]:
        """The model catalog as the project `workspace_id` (its ARM id) sees it, ordered by model id: how each model
        is sold, whether the project's region offers it (else where, and the cross-region hub), whether policy
        allows it and whether a new deployment would wait for an approver. `publisher` matches the registry's
        publisher (`meta`) or the catalog family exactly, `name` part of the model's name; both ignore case."""
        filters = {"workspaceId": workspace_id, "publisher": publisher, "name": name}
        return self._paged("models", filters, results_per_page, ModelListing.from_dict, **kwargs)

    @distributed_trace
    def get_model_availability(
        self, model_id: str, *, workspace_id: str | None = None, **kwargs: Any
    ) -> ModelAvailability:
        """Where the model deploys and how it is sold; with `workspace_id`, whether that project's region offers it."""
        params = _without_none({"modelId": model_id, "workspaceId": workspace_id})
        response = self._send(HttpRequest("GET", self._url("models/availability"), params=params), **kwargs)
        return ModelAvailability.from_dict(response.json())

    @distributed_trace
    def list_findings(
        self,
        *,
        rule: str | None = None,
        severity: str | None = None,
        workspace_id: str | None = None,
        deployment_id: str | None = None,
        state: str | None = None,
        results_per_page: int | None = None,
        **kwargs: Any,
    ) -> ItemPaged[Finding]:
        filters = {
            "rule": rule,
            "severity": severity,
            "workspaceId": workspace_id,
            "deploymentId": deployment_id,
            "state": state,
        }
        return self._paged("hygiene/findings", filters, results_per_page, Finding.from_dict, **kwargs)

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def send_request(self, request: HttpRequest, *, stream: bool = False, **kwargs: Any) -> HttpResponse:
        """Send a request of your own through the client's pipeline (key, token, retries); no error handling."""
        return self._client.send_request(request, stream=stream, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> BrokerClient:
        self._client.__enter__()
        return self

    def __exit__(self, *exc_details: object) -> None:
        self._client.__exit__(*exc_details)

    def _url(self, route: str, *ids: str, action: str | None = None) -> str:
        """`<endpoint>/api/<route>/<id>.../<action>`, each id percent-encoded whole."""
        parts = [self._api_base, route, *(quote(the_id, safe="") for the_id in ids)]
        return "/".join(parts if action is None else [*parts, action])

    def _decide(self, run_id: str, verb: str, comment: str | None, **kwargs: Any) -> Run:
        body = {"comment": comment} if comment is not None else {}
        request = HttpRequest("POST", self._url("runs", run_id, action=verb), json=body)
        return Run.from_dict(self._send(request, **kwargs).json())

    def _send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        response = self._client.send_request(request, **kwargs)
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def _begin(self, request: HttpRequest, **kwargs: Any) -> LROPoller[Deployment]:
        progress_hook: ProgressHook | None = kwargs.pop("progress_hook", None)
        polling = RunPollingMethod(
            api_base=self._api_base,
            polling_interval=kwargs.pop("polling_interval", self._polling_interval),
            progress_hook=progress_hook,
        )
        continuation_token: str | None = kwargs.pop("continuation_token", None)
        if continuation_token is not None:
            return LROPoller.from_continuation_token(
                polling, continuation_token, client=self._client, deserialization_callback=_deployment_of
            )
        return LROPoller(self._client, self._send(request, **kwargs), _deployment_of, polling)

    def _paged(
        self,
        route: str,
        filters: Mapping[str, Any],
        results_per_page: int | None,
        read: Callable[[Mapping[str, Any]], _Item],
        **kwargs: Any,
    ) -> ItemPaged[_Item]:
        params = _without_none({**filters, "pageSize": None if results_per_page is None else str(results_per_page)})

        def get_next(next_link: str | None) -> HttpResponse:
            if next_link:
                return self._send(HttpRequest("GET", next_link), **kwargs)
            return self._send(HttpRequest("GET", self._url(route), params=params), **kwargs)

        def extract_data(response: HttpResponse) -> tuple[str | None, Iterator[_Item]]:
            page = response.json()
            return page.get("nextLink") or None, iter([read(item) for item in page.get("value", [])])

        return ItemPaged(get_next, extract_data)


def _deployment_of(response: HttpResponse) -> Deployment:
    return Deployment.from_dict(response.json())


def _deployment_body(
    workspace_id: str,
    model_id: str,
    *,
    endpoint_name: str | None,
    content_safety: str | None,
    ticket: str | None,
    tags: Mapping[str, str] | None,
    allow_cross_region: bool | None,
) -> dict[str, Any]:
    """The body of a deployment request (and of its what-if), leaving out what the caller left out."""
    return _without_none(
        {
            "workspaceId": workspace_id,
            "modelId": model_id,
            "endpointName": endpoint_name,
            "contentSafety": content_safety,
            "ticket": ticket,
            "tags": dict(tags) if tags is not None else None,
            "allowCrossRegion": allow_cross_region,
        }
    )


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
