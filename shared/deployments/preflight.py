"""Preflight: every check a deployment must pass before the broker writes anything to Azure.

Checks are small registered classes run in order, cheapest first (Cloud Custodian's filter pattern): local policy
before any Azure call, so a request the broker would refuse anyway costs no ARM traffic. The first failing check
rejects the request with a problem that says what is wrong and how to fix it.

What-if (shared/deployments/what_if.py) evaluates every check instead (`evaluate_every_check`,
`evaluate_join_checks`): past a failure, a check is skipped only when it needs one that failed (`Check.needs`), or
when Azure refused an earlier check's read for good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar, Literal

from shared.azure_errors import AzureCallError
from shared.azure_ids import ScopeLevel, WorkspaceId
from shared.catalog import SOLD_DIRECTLY_PREFIX, ModelCatalog
from shared.cross_region import CrossRegionHubs, Hub
from shared.deployment import Deployment, DeploymentSpec
from shared.model_ids import normalize_model_id
from shared.naming import InvalidNameError
from shared.ownership import is_broker_managed
from shared.plan import DeploymentPlan, plan_for
from shared.policy import ApprovedModelPolicy, TargetAllowList
from shared.ports import AuthorizationPort, Endpoint, MachineLearningPort, Workspace
from shared.problems import Problem
from shared.rbac import PermissionSet
from shared.requests import DeploymentRequest
from shared.required_permissions import REQUESTER_DEPLOY_ACTION, Strictness, check_broker_permissions, required_actions
from shared.run_outcomes import requester_problem

CONNECTION_WRITE_ACTION = "Microsoft.MachineLearningServices/workspaces/connections/write"


@dataclass(frozen=True)
class PreflightPolicy:
    """The organisation's rules, from configuration."""

    catalog: ModelCatalog
    approved_models: ApprovedModelPolicy
    allowed_targets: TargetAllowList
    strictness: Strictness
    hubs: CrossRegionHubs = field(default_factory=CrossRegionHubs)
    # Let a model missing from the catalog through, classified by the prefix rule, instead of refusing it.
    allow_uncatalogued_models: bool = False


@dataclass
class PreflightContext:
    """One request under check; Azure reads are made at most once and shared between checks."""

    request: DeploymentRequest
    caller: str
    policy: PreflightPolicy
    machine_learning: MachineLearningPort
    authorization: AuthorizationPort
    plan: DeploymentPlan | None = None
    existing_endpoint: Endpoint | None = field(default=None)
    # The hub project a cross-region deployment goes to; None deploys into the requested workspace.
    target: WorkspaceId | None = None
    # The broker's deployment of this model in this project, if it has one.
    deployment: Deployment | None = None
    # What passing checks want the caller to know (e.g. a model let through by the prefix rule).
    warnings: list[str] = field(default_factory=list)

    @cached_property
    def workspace(self) -> Workspace:
        return self.machine_learning.get_workspace(self.request.workspace.resource_id)

    @cached_property
    def endpoints(self) -> list[Endpoint]:
        """The endpoints of the project the deployment goes to."""
        return self.machine_learning.list_endpoints((self.target or self.request.workspace).resource_id)

    @property
    def target_name(self) -> str:
        return self.target.name if self.target else self.workspace.name


class Check:
    name: ClassVar[str]
    # Decided from the request and configuration alone, without calling Azure.
    local: ClassVar[bool] = False
    # The earlier checks whose failure leaves this one nothing sound to judge (for evaluate_every_check).
    needs: ClassVar[tuple[str, ...]] = ()
    # Why a check that needs this one cannot be judged once this one has failed.
    unmet: ClassVar[str] = ""
    # What passing establishes, for callers shown every check.
    establishes: ClassVar[str] = ""

    def evaluate(self, context: PreflightContext) -> Problem | None:
        raise NotImplementedError

    def passed_detail(self, context: PreflightContext) -> str:
        """What passing established for this request (called only after `evaluate` passed)."""
        return self.establishes


CHECKS: list[type[Check]] = []


def register(check: type[Check]) -> type[Check]:
    CHECKS.append(check)
    return check


@register
class ModelApproved(Check):
    name = "model-approved"
    local = True
    establishes = "The approved-model policy allows the model."

    def evaluate(self, context: PreflightContext) -> Problem | None:
        model = context.request.model
        entry = context.policy.catalog.get(model)
        decision = context.policy.approved_models.evaluate(model, family=entry.family if entry else None)
        return None if decision.allowed else Problem.of("model-not-approved", decision.reason, rule=decision.rule)


@register
class ModelKnown(Check):
    """The model is in the catalog, so the broker knows how it is sold; a typo is refused before any Azure write.

    With `allow_uncatalogued_models` the prefix rule classifies an uncatalogued model instead, and the result warns.
    """

    name = "model-known"
    local = True
    unmet = "how the model is sold and where it deploys are unknown"

    def evaluate(self, context: PreflightContext) -> Problem | None:
        catalog = context.policy.catalog
        model = context.request.model
        if catalog.get(model) is not None:
            return None
        if context.policy.allow_uncatalogued_models:
            explanation = catalog.classify(model).explanation
            context.warnings.append(f"{explanation} Allowed because BROKER_ALLOW_UNCATALOGUED_MODELS is true.")
            return None
        suggestions = catalog.closest(model)
        did_you_mean = f" Did you mean {suggestions[0]}?" if suggestions else ""
        return Problem.of(
            "model-unknown",
            f"{model.normalized} is not in the model catalog, so the broker cannot tell how it is sold or where it "
            f"deploys.{did_you_mean} Fix: correct the model id; or, if the model exists, have an operator add it to "
            "the catalog override file named by BROKER_MODEL_CATALOG_OVERRIDES, or set "
            "BROKER_ALLOW_UNCATALOGUED_MODELS=true to let the prefix rule "
            f"('{SOLD_DIRECTLY_PREFIX}' means sold directly) decide.",
            suggestions=suggestions,
        )

    def passed_detail(self, context: PreflightContext) -> str:
        if context.policy.catalog.get(context.request.model) is not None:
            return "The model is in the model catalog, which says how it is sold and where it deploys."
        return "The model is not in the catalog; BROKER_ALLOW_UNCATALOGUED_MODELS lets the prefix rule classify it."


@register
class WorkspaceAllowed(Check):
    name = "workspace-allowed"
    local = True
    unmet = "the broker reads nothing of a workspace it does not deploy into"
    establishes = "The broker deploys into this workspace."

    def evaluate(self, context: PreflightContext) -> Problem | None:
        decision = context.policy.allowed_targets.evaluate(context.request.workspace)
        return None if decision.allowed else Problem.of("workspace-not-allowed", decision.reason, rule=decision.rule)


@register
class EndpointNameValid(Check):
    name = "endpoint-name-valid"
    local = True
    unmet = "the deployment has no valid names to plan with"

    def evaluate(self, context: PreflightContext) -> Problem | None:
        try:
            context.plan = plan_for(context.request, context.policy.catalog)
        except InvalidNameError as error:
            return Problem.of("endpoint-name-invalid", str(error))
        return None

    def passed_detail(self, context: PreflightContext) -> str:
        return f"Endpoint name '{_plan(context).endpoint_name}' is valid."


@register
class BrokerPermissions(Check):
    name = "broker-permissions"
    needs = ("model-known", "workspace-allowed", "endpoint-name-valid")
    establishes = "The broker's identity holds what the deployment needs at each scope."

    def evaluate(self, context: PreflightContext) -> Problem | None:
        return _broker_permission_problem(context, context.request.workspace)


@register
class RequesterMayDeploy(Check):
    name = "requester-permission"
    needs = ("workspace-allowed",)
    unmet = "the broker shows what a workspace holds only to callers who may deploy into it"
    establishes = "The caller may deploy serverless endpoints into the workspace."

    def evaluate(self, context: PreflightContext) -> Problem | None:
        return requester_problem(
            context.authorization, context.request.workspace, context.caller, REQUESTER_DEPLOY_ACTION
        )


@register
class RegionSupported(Check):
    """The workspace's region offers the model, or a configured hub region does and the request allows using it."""

    name = "region-supported"
    # The endpoint name too: a cross-region deployment is planned in its hub.
    needs = ("model-known", "workspace-allowed", "endpoint-name-valid")
    unmet = "where the endpoint would live is not settled"

    def evaluate(self, context: PreflightContext) -> Problem | None:
        location = context.workspace.location
        catalog = context.policy.catalog
        model = context.request.model
        if catalog.supports_location(model, location) is not False:
            return None
        hub = context.policy.hubs.for_model(model, catalog, requester=context.request.workspace)
        if hub is not None and context.request.allow_cross_region:
            return _deploy_in_hub(context, hub)
        regions = list(catalog.supported_locations(model) or ())
        detail = (
            f"{model.normalized} cannot be deployed as a serverless API in {location}, the region of workspace "
            f"{context.workspace.name}. Regions that offer it: {', '.join(regions)}. "
        )
        if hub is None:
            return Problem.of(
                "region-unsupported",
                detail + "Deploy into a project in one of those regions and consume the endpoint from this project "
                "through a connection.",
                workspaceLocation=location,
                supportedRegions=regions,
            )
        return Problem.of(
            "region-unsupported",
            detail + f"Send the request again with allowCrossRegion: true to have the broker deploy it in hub project "
            f"{hub.workspace.name} ({hub.location}) and connect this project to the endpoint.",
            workspaceLocation=location,
            supportedRegions=regions,
            crossRegionHub={"workspaceId": hub.workspace.resource_id, "location": hub.location},
        )

    def passed_detail(self, context: PreflightContext) -> str:
        location = context.workspace.location
        if context.target is not None:
            return (
                f"{location} does not offer the model; it deploys in hub project {context.target.name}, connected "
                f"to workspace {context.workspace.name}."
            )
        if context.policy.catalog.supports_location(context.request.model, location) is None:
            return f"The catalog does not list the model's regions, so Azure decides whether {location} offers it."
        return f"{location}, the workspace's region, offers the model."


def _deploy_in_hub(context: PreflightContext, hub: Hub) -> Problem | None:
    """Retarget the deployment to `hub`, once the broker may deploy there and connect the requester's project."""
    context.target = hub.workspace
    context.plan = plan_for(context.request, context.policy.catalog, target=hub.workspace)
    problem = _broker_permission_problem(context, hub.workspace)
    if problem is not None:
        return problem
    requester = context.request.workspace
    held = PermissionSet.from_rest(context.authorization.own_permissions(requester.resource_id))
    if held.allows(CONNECTION_WRITE_ACTION):
        return None
    return Problem.of(
        "broker-permissions-missing",
        f"The broker's identity may not create the connection to the endpoint in workspace {requester} "
        f"('{CONNECTION_WRITE_ACTION}'). Fix: assign the Azure AI Developer role to the broker's identity on that "
        "workspace or its resource group.",
        missingActions=[
            {"scope": "workspace", "scopeId": requester.resource_id, "missingActions": [CONNECTION_WRITE_ACTION]}
        ],
    )


@register
class OneDeploymentPerModel(Check):
    name = "one-deployment-per-model"
    needs = ("endpoint-name-valid", "region-supported", "requester-permission")

    def evaluate(self, context: PreflightContext) -> Problem | None:
        plan = _plan(context)
        deployment = context.deployment
        if deployment is not None and not deployment.is_gone:
            differences = deployment.spec.differences(spec_for(context.request, plan, context.target))
            if differences:
                return conflict_problem(deployment, differences)
        wanted = plan.model.normalized.lower()
        for endpoint in context.endpoints:
            same_model = _versionless(endpoint.model_id) == wanted
            same_name = endpoint.name.lower() == plan.endpoint_name.lower()
            if same_model and same_name and is_broker_managed(endpoint.tags):
                context.existing_endpoint = endpoint
                return None
            if same_model:
                return Problem.of(
                    "deployment-conflict",
                    f"Workspace {context.target_name} already has endpoint '{endpoint.name}' for "
                    f"{plan.model.normalized}, and a project may hold one deployment per model. Use that endpoint, "
                    "or delete it first.",
                    existingEndpoint=endpoint.name,
                )
            if same_name:
                return Problem.of(
                    "deployment-conflict",
                    f"Endpoint name '{endpoint.name}' is taken in workspace {context.target_name} by "
                    f"{endpoint.model_id}. Choose another endpointName.",
                    existingEndpoint=endpoint.name,
                )
        return None

    def passed_detail(self, context: PreflightContext) -> str:
        if context.existing_endpoint is not None:
            return (
                f"Workspace {context.target_name} holds the broker's endpoint '{context.existing_endpoint.name}' for "
                "the model; the deployment uses it."
            )
        return f"Workspace {context.target_name} holds no other endpoint of the model, nor one with its name."


def spec_for(request: DeploymentRequest, plan: DeploymentPlan, target: WorkspaceId | None) -> DeploymentSpec:
    """The deployment a request that passed preflight asks for."""
    return DeploymentSpec(
        workspace_id=request.workspace_id,
        model_id=plan.model.normalized,
        endpoint_name=plan.endpoint_name,
        content_safety=request.content_safety,
        tags=request.tags,
        cross_region_hub=target.resource_id if target else None,
    )


def conflict_problem(deployment: Deployment, differences: list[str]) -> Problem:
    """A request for a model the project already has a deployment of, asking for something else."""
    existing = deployment.spec.model_dump(by_alias=True)
    what = ", ".join(f"{name} {existing.get(name)!r}" for name in differences)
    return Problem.of(
        "deployment-conflict",
        f"Deployment {deployment.id} already deploys {deployment.spec.model_id} into workspace "
        f"{deployment.workspace.name} with {what}, and a project holds one deployment per model. Send the request "
        f"with the same values to use it, or DELETE /api/deployments/{deployment.id} and request it again.",
        deploymentId=deployment.id,
        runId=deployment.status.current_run_id,
        differences=differences,
    )


@dataclass(frozen=True)
class PreflightResult:
    problem: Problem | None
    plan: DeploymentPlan | None
    existing_endpoint: Endpoint | None
    checks_passed: tuple[str, ...]
    target: WorkspaceId | None = None
    warnings: tuple[str, ...] = ()
    # False after the checks for joining (run_join_preflight): enough to join or answer, not to write to Azure.
    complete: bool = True


def run_preflight(
    context: PreflightContext, checks: list[type[Check]] | None = None, *, on_check: Callable[[str], None] | None = None
) -> PreflightResult:
    passed: list[str] = []
    problem = _run_checks(context, CHECKS if checks is None else checks, passed, on_check)
    return _result(context, problem, passed)


def run_join_preflight(context: PreflightContext, deployment: Deployment) -> PreflightResult | None:
    """The checks for a request that asks again for `deployment`, in flight or Ready, exactly as it is.

    The deployment exists with that spec, so the broker's permissions, the region and the project's endpoints were
    checked when it was made; what is left is local policy and whether this caller may deploy there (one ARM read
    at most). The target is the deployment's own: its hub when the request allows that hub, else the workspace.
    None when the request asks for something else: then every check runs, as for a new request.
    """
    passed: list[str] = []
    problem = _run_checks(context, [check for check in CHECKS if check.local], passed, None)
    if problem is None:
        context.target = _hub_kept(context, deployment)
        context.plan = plan_for(context.request, context.policy.catalog, target=context.target)
        if deployment.spec.differences(spec_for(context.request, context.plan, context.target)):
            return None
        problem = _run_checks(context, [RequesterMayDeploy], passed, None)
    return replace(_result(context, problem, passed), complete=False)


def _hub_kept(context: PreflightContext, deployment: Deployment) -> WorkspaceId | None:
    hub_id = deployment.spec.cross_region_hub
    if hub_id is None or not context.request.allow_cross_region:
        return None
    policy = context.policy
    hub = policy.hubs.for_model(context.request.model, policy.catalog, requester=context.request.workspace)
    return hub.workspace if hub is not None and hub.workspace.resource_id.lower() == hub_id.lower() else None


CheckVerdict = Literal["passed", "failed", "skipped", "notNeeded"]
# How an Azure refusal met during a check becomes that check's problem: None lets the error through (transient).
AzureRefusal = Callable[[AzureCallError], Problem | None]


@dataclass(frozen=True)
class CheckOutcome:
    """One check as what-if reports it: evaluated past earlier failures, unlike run_preflight."""

    name: str
    verdict: CheckVerdict
    detail: str
    problem: Problem | None = None
    # A skipped check: the earlier check it needed, or whose read Azure refused.
    blocked_by: str | None = None


def evaluate_every_check(context: PreflightContext, *, refusal: AzureRefusal) -> list[CheckOutcome]:
    """Every check in order, as run_preflight runs them, but carrying on past a failure, so every failing check is
    found. A check is skipped when one it needs failed or was skipped, and a check calling Azure is skipped once
    Azure refused an earlier check's read for good (`refusal` turns that into the earlier check's problem)."""
    evaluation = _Evaluation(context, refusal)
    evaluation.run(CHECKS)
    return list(evaluation.outcomes.values())


def evaluate_join_checks(
    context: PreflightContext, deployment: Deployment, *, refusal: AzureRefusal
) -> list[CheckOutcome] | None:
    """run_join_preflight's checks, each evaluated past a failure; the checks it leaves out are `notNeeded`. None
    when the request asks `deployment` for something else: then intake runs every check (evaluate_every_check)."""
    evaluation = _Evaluation(context, refusal)
    evaluation.run([check for check in CHECKS if check.local])
    if evaluation.all_passed:
        context.target = _hub_kept(context, deployment)
        context.plan = plan_for(context.request, context.policy.catalog, target=context.target)
        if deployment.spec.differences(spec_for(context.request, context.plan, context.target)):
            return None
    evaluation.run([RequesterMayDeploy])
    not_needed = (
        f"Checked when deployment {deployment.id} was made: a request asking for it exactly as it is runs only "
        "local policy and the requester's permission."
    )
    return [
        evaluation.outcomes.get(check.name) or CheckOutcome(check.name, "notNeeded", not_needed) for check in CHECKS
    ]


class _Evaluation:
    """Outcomes of checks run one after another on one context, each judged in the light of those before it."""

    def __init__(self, context: PreflightContext, refusal: AzureRefusal) -> None:
        self._context = context
        self._refusal = refusal
        self._refused_by: str | None = None
        self.outcomes: dict[str, CheckOutcome] = {}

    @property
    def all_passed(self) -> bool:
        return all(outcome.verdict == "passed" for outcome in self.outcomes.values())

    def run(self, checks: list[type[Check]]) -> None:
        for check_type in checks:
            self.outcomes[check_type.name] = self._outcome(check_type())

    def _outcome(self, check: Check) -> CheckOutcome:
        unmet = [self.outcomes[name] for name in check.needs if name in self.outcomes]
        blocking = next((outcome for outcome in unmet if outcome.verdict in ("failed", "skipped")), None)
        if blocking is not None:
            how = "failed" if blocking.verdict == "failed" else "was skipped"
            why = next(known.unmet for known in CHECKS if known.name == blocking.name)
            detail = f"Not evaluated: {blocking.name} {how}, so {why}."
            return CheckOutcome(check.name, "skipped", detail, blocked_by=blocking.name)
        if self._refused_by is not None and not check.local:
            detail = f"Not evaluated: Azure refused {self._refused_by}'s read for good, and this check calls Azure too."
            return CheckOutcome(check.name, "skipped", detail, blocked_by=self._refused_by)
        try:
            problem = check.evaluate(self._context)
        except AzureCallError as error:
            problem = self._refusal(error)
            if problem is None:
                raise
            self._refused_by = check.name
        if problem is not None:
            return CheckOutcome(check.name, "failed", problem.detail or problem.kind.title, problem)
        return CheckOutcome(check.name, "passed", check.passed_detail(self._context))


def _run_checks(
    context: PreflightContext,
    checks: list[type[Check]],
    passed: list[str],
    on_check: Callable[[str], None] | None,
) -> Problem | None:
    """Run `checks` in order, noting each that passes in `passed`; the first failing check's problem."""
    for check_type in checks:
        check = check_type()
        if on_check:
            on_check(check.name)
        problem = check.evaluate(context)
        if problem is not None:
            return problem
        passed.append(check.name)
    return None


def _result(context: PreflightContext, problem: Problem | None, passed: list[str]) -> PreflightResult:
    return PreflightResult(
        problem, context.plan, context.existing_endpoint, tuple(passed), context.target, tuple(context.warnings)
    )


def _broker_permission_problem(context: PreflightContext, workspace: WorkspaceId) -> Problem | None:
    marketplace = _plan(context).classification.requires_marketplace_subscription
    authorization = context.authorization
    strictness = context.policy.strictness
    roles: frozenset[str] = frozenset()
    if marketplace and strictness is Strictness.ROLE_BASED:
        roles = authorization.assigned_role_ids(authorization.own_principal_id(), workspace.resource_group_scope)
    # Only scopes where something is needed are read: a sufficient role leaves just the workspace's actions.
    needed_at = {
        item.scope
        for item in required_actions(marketplace_model=marketplace, strictness=strictness, resource_group_roles=roles)
    }
    permissions = {
        level: PermissionSet.from_rest(authorization.own_permissions(workspace.scope(level)))
        for level in ScopeLevel
        if level in needed_at
    }
    result = check_broker_permissions(
        workspace,
        permissions,
        marketplace_model=marketplace,
        strictness=context.policy.strictness,
        resource_group_roles=roles,
    )
    if result.ok:
        return None
    return Problem.of("broker-permissions-missing", result.rejection_text, missingActions=result.details())


def _plan(context: PreflightContext) -> DeploymentPlan:
    if context.plan is None:
        context.plan = plan_for(context.request, context.policy.catalog, target=context.target)
    return context.plan


def _versionless(model_id: str) -> str:
    try:
        return normalize_model_id(model_id).lower()
    except ValueError:
        return model_id.lower()
