"""What-if: what a deployment request would do, worked out from reads alone (Terraform's plan, ARM's what-if).

The planner walks intake's own path (shared/deployments/service.py) without its writes: the same deployment read,
the same choice between the light checks for joining and every check, the same reconciliation (create, join, ready,
repair, or refuse) and, for a run, the Azure writes its steps would make given what Azure holds now (the workflow's
own rules: a Subscribed subscription is reused, a provisioned endpoint kept, a key stored only where Key Vault's value
differs). Unlike intake it evaluates every check, not only up to the first failure (preflight.evaluate_every_check).

It writes nothing anywhere: no run, idempotency or ticket row, no deployment change, no queue message, no ARM or Key
Vault write, and no listKeys (a POST). A catch-up intake would write (a run that ended before its deployment heard)
is applied to a copy in memory. A caller who may not deploy into the workspace, and holds neither the auditor nor the
approver role, is answered as if the broker had no deployment there, so the answer reveals no one else's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.access import BrokerRoles, Caller
from shared.approvals import ApprovalPolicy
from shared.azure_errors import AzureCallError
from shared.cross_region import connection_name
from shared.deployment import Condition, Deployment, Phase, deployment_id
from shared.deployments.intake_rules import azure_refusal, completed, first_status, torn_down_meanwhile
from shared.deployments.observe import PROVISIONING_IN_PROGRESS, Observation, observe
from shared.deployments.preflight import (
    CheckOutcome,
    CheckVerdict,
    PreflightContext,
    PreflightPolicy,
    evaluate_every_check,
    evaluate_join_checks,
)
from shared.deployments.workflow import SUBSCRIBED, SUCCEEDED
from shared.key_secrets import KEY_TYPES
from shared.ownership import ownership_tags
from shared.plan import DeploymentPlan
from shared.policy import publisher_of
from shared.ports import (
    AuthorizationPort,
    Endpoint,
    MachineLearningPort,
    MarketplaceSubscription,
    RunRepositoryPort,
    SecretStorePort,
    StoredSecret,
)
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.required_permissions import REQUESTER_DEPLOY_ACTION
from shared.run_outcomes import requester_problem
from shared.runs import RunOperation, RunRecord, RunStatus

Verdict = Literal["allowed", "rejected", "needsApproval"]
Outcome = Literal["create", "join", "ready", "repair", "rejected"]
PlanAction = Literal[
    "subscribe", "reuseSubscription", "createEndpoint", "keepEndpoint", "storeSecret", "createConnection", "joinRun"
]
# Whether a step writes to Azure: always, only where Key Vault's value differs from the endpoint's key, or not.
PlanWrite = Literal["always", "ifDifferent", "none"]

# The seed, "Cost and quota considerations": quota is managed per deployment.
TOKENS_PER_MINUTE = 200_000
REQUESTS_PER_MINUTE = 1_000
DEPLOYMENTS_PER_MODEL_PER_PROJECT = 1
LIMITS_SOURCE = (
    "Microsoft Learn, Deploy models as serverless API deployments: quota is managed per deployment; ask Azure "
    "Support when these limits are not enough."
)
OFFER_SOURCE = (
    "Azure Marketplace: subscribing names the offer's publisher, offer and plan ids (the subscription's "
    "marketplacePlan); the model catalog does not list them."
)
UNKNOWN_VAULT = "the broker's Key Vault (AZURE_KEYVAULT_URL)"
_SECRET_PATH = "/secrets/"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)


class ProblemReport(_Wire):
    """A problem as intake would answer it (RFC 9457: `type` is the URI, `slug` its stable last segment)."""

    type: str
    slug: str
    title: str
    status: int
    detail: str | None = None
    extensions: dict[str, Any] = {}

    @classmethod
    def of(cls, problem: Problem) -> ProblemReport:
        kind = problem.kind
        return cls(
            type=kind.uri,
            slug=kind.slug,
            title=kind.title,
            status=kind.status,
            detail=problem.detail,
            extensions=dict(problem.extensions),
        )


class CheckReport(_Wire):
    """One preflight check: passed, failed (with its problem), skipped (blockedBy names the check it needed, or
    whose Azure read was refused), or notNeeded (a request for a deployment as it is runs the light checks)."""

    name: str
    outcome: CheckVerdict
    detail: str = Field(description="What passing established, what failed and how to fix it, or why it was not run")
    problem: ProblemReport | None = Field(default=None, description="The problem intake would refuse with (failed)")
    blocked_by: str | None = Field(
        default=None, description="The earlier check this one needed, or whose Azure read was refused (skipped)"
    )

    @classmethod
    def of(cls, outcome: CheckOutcome) -> CheckReport:
        problem = ProblemReport.of(outcome.problem) if outcome.problem else None
        return cls(
            name=outcome.name,
            outcome=outcome.verdict,
            detail=outcome.detail,
            problem=problem,
            blocked_by=outcome.blocked_by,
        )


class RunReference(_Wire):
    """A run as the answer names it."""

    id: str
    operation: RunOperation
    status: RunStatus


class ApprovalReport(_Wire):
    """Why the deploy run would wait in PendingApproval, who may decide it, and how long it would wait."""

    rule: str
    reason: str
    approvers: str
    expiry_hours: float


class MarketplaceOffer(_Wire):
    """The Marketplace offer a subscription step subscribes to: the model's, as far as the broker can tell."""

    model_id: str
    publisher: str = Field(description="The publisher the model's registry names, as the broker's policies read it")
    source: str = Field(default=OFFER_SOURCE, description="Where the offer's publisher, offer and plan ids come from")


class PlanStep(_Wire):
    """One step of the run, in order: what it does in Azure, to which resource or secret, and whether it writes."""

    action: PlanAction
    target: str = Field(description="The ARM resource id, Key Vault secret name or run id the step acts on")
    write: PlanWrite = Field(
        description="always: the step writes; ifDifferent: only where Key Vault's value differs from the endpoint's "
        "key; none: the step reuses, keeps or joins what is there"
    )
    description: str
    offer: MarketplaceOffer | None = Field(default=None, description="The Marketplace offer (subscription steps)")
    location: str | None = Field(default=None, description="The endpoint's region (createEndpoint)")
    content_safety: str | None = Field(default=None, description="Enabled or Disabled (createEndpoint)")
    tags: dict[str, str] | None = Field(
        default=None, description="The endpoint's tags, besides brokerRunId naming the run (createEndpoint)"
    )
    vault: str | None = Field(default=None, description="The vault's URL, when a secret already names it (storeSecret)")


class Limits(_Wire):
    """What Azure allows every serverless deployment, whoever makes it."""

    tokens_per_minute: int = TOKENS_PER_MINUTE
    requests_per_minute: int = REQUESTS_PER_MINUTE
    deployments_per_model_per_project: int = DEPLOYMENTS_PER_MODEL_PER_PROJECT
    source: str = LIMITS_SOURCE


class WhatIf(_Wire):
    """`POST /api/deployments/what-if`: what `POST /api/deployments` with this body would do now."""

    verdict: Verdict = Field(
        description="allowed; rejected; or needsApproval: allowed, but the deploy run would wait for an approver"
    )
    outcome: Outcome = Field(
        description="What intake would do: create (a deploy run), join (the run in flight), ready (nothing to do), "
        "repair (a repair run), or rejected"
    )
    deployment_id: str = Field(description="The deployment of this (workspace, model), whether or not it exists")
    summary: str
    run: RunReference | None = Field(default=None, description="The run a join would join (or a teardown refusing)")
    repairs: tuple[Condition, ...] = Field(
        default=(), description="What a repair would mend: the conditions Azure's state fails, as intake observes them"
    )
    problem: ProblemReport | None = Field(
        default=None, description="A refusal that is no check's (the deployment is being torn down)"
    )
    checks: tuple[CheckReport, ...] = Field(description="Every preflight check, in the order intake runs them")
    approval: ApprovalReport | None = None
    plan: tuple[PlanStep, ...] = Field(default=(), description="The run's steps in Azure, in order")
    limits: Limits = Limits()
    warnings: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


@dataclass
class _Asking:
    """One request under planning: what intake would know at each point."""

    request: DeploymentRequest
    caller: Caller
    deployment_id: str
    checks: list[CheckOutcome]
    context: PreflightContext
    # False after the light checks: a run would need every check first.
    complete: bool
    warnings: list[str] = field(default_factory=list)


class WhatIfPlanner:
    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        machine_learning: MachineLearningPort,
        authorization: AuthorizationPort,
        secrets: SecretStorePort,
        policy: PreflightPolicy,
        approvals: ApprovalPolicy,
        roles: BrokerRoles,
        clock: Callable[[], datetime],
        healthy_states: Collection[str],
    ) -> None:
        self._runs = runs
        self._ml = machine_learning
        self._authorization = authorization
        self._secrets = secrets
        self._policy = policy
        self._approvals = approvals
        self._roles = roles
        self._clock = clock
        self._healthy_states = healthy_states

    def what_if(self, request: DeploymentRequest, *, caller: Caller) -> WhatIf:
        """What intake would answer `request` from `caller` with, and the Azure writes its run would make.

        Raises AzureCallError for a transient Azure failure (the handler answers 503), as intake does."""
        the_id = deployment_id(request.workspace, request.model)
        stored = self._runs.get_deployment(the_id)
        existing = stored.deployment if stored is not None and not stored.deployment.is_gone else None
        if existing is not None and not self._may_see(existing, request, caller):
            stored, existing = None, None
        request = completed(request, existing.spec) if existing else request
        asking = self._checked(request, caller, the_id, existing)
        if _failed(asking.checks):
            return _refused(asking)
        return self._reconcile(asking, stored.deployment if stored is not None else None)

    def _checked(self, request: DeploymentRequest, caller: Caller, the_id: str, existing: Deployment | None) -> _Asking:
        """The request with intake's checks evaluated: the light ones for a deployment in flight or Ready that it
        asks for as it is, otherwise every one (on a context of its own, as intake does)."""
        refusal = self._refusal(request)
        if existing is not None and (existing.status.phase is Phase.READY or existing.in_flight):
            context = self._context(request, caller, existing)
            light = evaluate_join_checks(context, existing, refusal=refusal)
            if light is not None:
                return _Asking(request, caller, the_id, light, context, complete=False)
        context = self._context(request, caller, existing)
        return _Asking(request, caller, the_id, evaluate_every_check(context, refusal=refusal), context, complete=True)

    def _may_see(self, deployment: Deployment, request: DeploymentRequest, caller: Caller) -> bool:
        """Whether the answer may show `deployment`: to auditors, approvers, and callers who may deploy there. Only a
        workspace the broker deploys into is asked about (preflight would read nothing of another)."""
        if self._roles.auditor.held_by(caller) or self._roles.approver.held_by(caller):
            return True
        if not self._policy.allowed_targets.evaluate(deployment.workspace).allowed:
            return False
        try:
            problem = requester_problem(
                self._authorization, request.workspace, caller.object_id, REQUESTER_DEPLOY_ACTION
            )
        except AzureCallError as error:
            if error.transient:
                raise
            return False
        return problem is None

    def _reconcile(self, asking: _Asking, deployment: Deployment | None) -> WhatIf:
        """Intake's reconciliation (DeploymentService._reconcile) of `deployment` as read, writing nothing."""
        current = self._current_run(deployment)
        if deployment is not None and current is not None and current.is_terminal:
            # Intake records the end on the deployment first, then looks again: this answer looks at a copy.
            asking.warnings.append(
                f"Run {current.id} has ended {current.status} but deployment {deployment.id} has not heard yet; "
                "intake records that first, as this answer assumes."
            )
            deployment, current = deployment.run_finished(current, at=self._clock()), None
        if deployment is None or deployment.is_gone:
            return self._run(asking, deployment, "deploy")
        if current is not None:
            return self._join(asking, deployment, current)
        if deployment.in_flight:
            asking.warnings.append(
                f"Run {deployment.status.current_run_id}, which claimed deployment {deployment.id}, is not stored: "
                "intake takes the claim over once the run has had a moment to be stored."
            )
            return self._run(asking, deployment, "repair" if deployment.status.keys_run_id else "deploy")
        seen = self._observe(asking)
        if deployment.status.phase is Phase.READY and seen.all_true:
            return self._ready(asking, deployment)
        return self._run(asking, deployment, "repair", seen=seen)

    def _current_run(self, deployment: Deployment | None) -> RunRecord | None:
        """The stored run holding the claim of a deployment marked in flight."""
        if deployment is None or not deployment.in_flight or not deployment.status.current_run_id:
            return None
        held = self._runs.get(deployment.status.current_run_id)
        return held.run if held is not None else None

    def _join(self, asking: _Asking, deployment: Deployment, current: RunRecord) -> WhatIf:
        reference = RunReference(id=current.id, operation=current.operation, status=current.status)
        if current.operation == "delete":
            problem = torn_down_meanwhile(current)
            return _refused(asking, problem=problem, summary=problem.detail or "", run=reference)
        step = PlanStep(
            action="joinRun",
            target=current.id,
            write="none",
            description=f"Join run {current.id} ({current.status}), which answers this request too with its own "
            "accepted and terminal events; nothing is written to Azure.",
        )
        summary = (
            f"The request would join {current.operation} run {current.id} of deployment {deployment.id}, "
            f"{current.status} now."
        )
        return _answer(asking, "allowed", "join", summary, run=reference, plan=(step,))

    def _ready(self, asking: _Asking, deployment: Deployment) -> WhatIf:
        summary = (
            f"Deployment {deployment.id} is Ready as asked and Azure agrees: the request would be answered with it, "
            "writing nothing to Azure."
        )
        return _answer(asking, "allowed", "ready", summary)

    def _run(
        self,
        asking: _Asking,
        deployment: Deployment | None,
        operation: RunOperation,
        *,
        seen: Observation | None = None,
    ) -> WhatIf:
        """A new run of `operation`, starting where `seen` (a repair's observation) says: every check first (as
        intake's _start), then the writes its steps would make."""
        if not asking.complete:
            known = deployment if deployment is not None and not deployment.is_gone else None
            asking.context = self._context(asking.request, asking.caller, known)
            asking.checks = evaluate_every_check(asking.context, refusal=self._refusal(asking.request))
            asking.complete = True
            if _failed(asking.checks):
                return _refused(asking)
        plan = asking.context.plan
        assert plan is not None, "passed checks always leave a plan"
        status, _ = first_status(plan, asking.context.existing_endpoint, seen)
        steps = self._steps(asking, plan, status, seen)
        requirement = (
            self._approvals.requirement(asking.request.workspace, plan.model, plan.classification)
            if operation == "deploy"
            else None
        )
        writes = sum(step.write != "none" for step in steps)
        if operation == "repair":
            repairs = tuple(seen.failing()) if seen is not None else ()
            lacking = ", ".join(f"{item.type} ({item.reason})" for item in repairs) or "the claim of a lost run"
            summary = f"A repair run of deployment {asking.deployment_id} would mend {lacking}: {writes} Azure "
            return _answer(asking, "allowed", "repair", summary + "writes at most.", repairs=repairs, plan=steps)
        summary = f"A deploy run would make deployment {asking.deployment_id}: {writes} Azure writes at most"
        if requirement is None:
            return _answer(asking, "allowed", "create", summary + ".", plan=steps)
        approval = ApprovalReport(
            rule=requirement.rule,
            reason=requirement.reason,
            approvers=self._roles.approver.description,
            expiry_hours=self._approvals.expiry.total_seconds() / 3600,
        )
        summary += ", once an approver approves it (the run waits in PendingApproval, writing nothing, until then)."
        return _answer(asking, "needsApproval", "create", summary, plan=steps, approval=approval)

    def _steps(
        self, asking: _Asking, plan: DeploymentPlan, start: RunStatus, seen: Observation | None
    ) -> tuple[PlanStep, ...]:
        """The run's Azure writes from `start` on, judged as its steps judge them, from `seen` (a repair's
        observation) or from fresh reads of the subscription and the secrets."""
        steps: list[PlanStep] = []
        if start is RunStatus.SUBSCRIBING:
            assert plan.subscription_name is not None, "only Marketplace models start by subscribing"
            subscription = (
                seen.subscription
                if seen is not None
                else self._ml.get_subscription(plan.workspace.resource_id, plan.subscription_name)
            )
            steps.append(_subscription_step(plan, subscription))
        endpoint = seen.endpoint if seen is not None else asking.context.existing_endpoint
        if start in (RunStatus.SUBSCRIBING, RunStatus.PROVISIONING):
            steps.append(self._endpoint_step(asking, plan, endpoint))
        else:
            assert endpoint is not None, "a run starts at its keys only for an endpoint that exists"
            steps.append(_kept_endpoint(plan, endpoint))
        created = steps[-1].action == "createEndpoint"
        secrets = seen.secrets if seen is not None else self._stored_secrets(plan, created)
        steps.extend(_secret_steps(plan, secrets, created))
        if asking.context.target is not None:
            steps.append(_connection_step(asking.request, plan))
        return tuple(steps)

    def _endpoint_step(self, asking: _Asking, plan: DeploymentPlan, endpoint: Endpoint | None) -> PlanStep:
        if endpoint is not None and endpoint.provisioning_state.lower() in {SUCCEEDED, *PROVISIONING_IN_PROGRESS}:
            return _kept_endpoint(plan, endpoint)
        context = asking.context
        workspace = context.workspace if context.target is None else self._ml.get_workspace(context.target.resource_id)
        location = workspace.location
        request = asking.request
        again = f", again: it is {endpoint.provisioning_state}" if endpoint is not None else ""
        safety = "on" if request.content_safety == "Enabled" else "off"
        return PlanStep(
            action="createEndpoint",
            target=plan.endpoint_id,
            write="always",
            description=f"Create serverless endpoint '{plan.endpoint_name}' for {plan.model.normalized} in project "
            f"{plan.workspace.name} ({location}){again}, content safety {safety}, tagged as the broker's (and with "
            "brokerRunId naming the run).",
            location=location,
            content_safety=request.content_safety,
            tags={**(request.tags or {}), **ownership_tags()},
        )

    def _stored_secrets(self, plan: DeploymentPlan, created: bool) -> tuple[StoredSecret | None, ...]:
        """The key secrets as Key Vault holds them; a new endpoint's keys are new, so nothing needs reading."""
        if created:
            return (None, None)
        return tuple(self._secrets.get_secret(getattr(plan.secret_names, key_type)) for key_type in KEY_TYPES)

    def _observe(self, asking: _Asking) -> Observation:
        plan = asking.context.plan
        assert plan is not None
        return observe(
            plan,
            machine_learning=self._ml,
            secrets=self._secrets,
            at=self._clock(),
            healthy_states=self._healthy_states,
        )

    def _context(self, request: DeploymentRequest, caller: Caller, deployment: Deployment | None) -> PreflightContext:
        return PreflightContext(
            request=request,
            caller=caller.object_id,
            policy=self._policy,
            machine_learning=self._ml,
            authorization=self._authorization,
            deployment=deployment,
        )

    @staticmethod
    def _refusal(request: DeploymentRequest) -> Callable[[AzureCallError], Problem | None]:
        return lambda error: azure_refusal(error, request)


def _subscription_step(plan: DeploymentPlan, subscription: MarketplaceSubscription | None) -> PlanStep:
    name = plan.subscription_name
    assert name is not None
    target = plan.workspace.marketplace_subscription_id(name)
    offer = MarketplaceOffer(model_id=plan.model.normalized, publisher=publisher_of(plan.model))
    if subscription is not None and (subscription.status or "").lower() == SUBSCRIBED:
        description = f"Reuse Marketplace subscription '{name}', which is Subscribed: nothing is bought again."
        return PlanStep(action="reuseSubscription", target=target, write="none", description=description, offer=offer)
    if subscription is not None and (subscription.provisioning_state or "").lower() in PROVISIONING_IN_PROGRESS:
        description = f"Wait for Marketplace subscription '{name}', which Azure is creating: nothing is bought again."
        return PlanStep(action="reuseSubscription", target=target, write="none", description=description, offer=offer)
    again = f" again ('{name}' is {subscription.status or subscription.provisioning_state})" if subscription else ""
    return PlanStep(
        action="subscribe",
        target=target,
        write="always",
        description=f"Subscribe project {plan.workspace.name} to the Azure Marketplace offer of "
        f"{plan.model.normalized}{again}, as subscription '{name}': this accepts the offer's terms, and the model is "
        "billed through Marketplace.",
        offer=offer,
    )


def _kept_endpoint(plan: DeploymentPlan, endpoint: Endpoint) -> PlanStep:
    state = endpoint.provisioning_state
    how = "which is provisioned" if state.lower() == SUCCEEDED else f"waiting while Azure provisions it ({state})"
    return PlanStep(
        action="keepEndpoint",
        target=endpoint.id,
        write="none",
        description=f"Keep the broker's endpoint '{endpoint.name}' in project {plan.workspace.name}, {how}.",
    )


def _secret_steps(plan: DeploymentPlan, secrets: tuple[StoredSecret | None, ...], created: bool) -> list[PlanStep]:
    vault = next((_vault_of(secret) for secret in secrets if secret is not None), None)
    steps = []
    for key_type, secret in zip(KEY_TYPES, secrets, strict=True):
        name = getattr(plan.secret_names, key_type)
        certain = created or secret is None or not secret.enabled
        steps.append(
            PlanStep(
                action="storeSecret",
                target=name,
                write="always" if certain else "ifDifferent",
                description=f"Read the endpoint's keys (listKeys) and store the {key_type} key as secret '{name}' in "
                f"{vault or UNKNOWN_VAULT}" + ("." if certain else ", only if Key Vault's value differs from it."),
                vault=vault,
            )
        )
    return steps


def _connection_step(request: DeploymentRequest, plan: DeploymentPlan) -> PlanStep:
    requester = request.workspace
    name = connection_name(plan.endpoint_name)
    return PlanStep(
        action="createConnection",
        target=f"{requester.resource_id}/connections/{name}",
        write="always",
        description=f"Create (or update) connection '{name}' in the requester's project {requester.name} to the "
        f"endpoint in hub project {plan.workspace.name}, with one of its keys.",
    )


def _vault_of(secret: StoredSecret) -> str:
    """The vault's URL, from a secret id (`<vault>/secrets/<name>/<version>`)."""
    return secret.id.partition(_SECRET_PATH)[0]


def _failed(checks: list[CheckOutcome]) -> list[str]:
    return [check.name for check in checks if check.verdict == "failed"]


def _refused(
    asking: _Asking, *, problem: Problem | None = None, summary: str | None = None, run: RunReference | None = None
) -> WhatIf:
    failed = _failed(asking.checks)
    return _answer(
        asking,
        "rejected",
        "rejected",
        summary or f"Intake would refuse the request: {', '.join(failed)} failed.",
        run=run,
        problem=ProblemReport.of(problem) if problem else None,
    )


def _answer(asking: _Asking, verdict: Verdict, outcome: Outcome, summary: str, **parts: Any) -> WhatIf:
    warnings = tuple(dict.fromkeys([*asking.context.warnings, *asking.warnings]))
    return WhatIf(
        verdict=verdict,
        outcome=outcome,
        deployment_id=asking.deployment_id,
        summary=summary,
        checks=tuple(CheckReport.of(check) for check in asking.checks),
        warnings=warnings,
        **parts,
    )
