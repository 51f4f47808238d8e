"""Which Deployment resource each finding is about, and what to do about it.

A finding about something the broker made (an endpoint, its orphaned secrets, a run) names the deployment it
belongs to: the one whose `status.endpoint.id` is the finding's resource (ARM ids compare case-insensitively), else
the deployment of the run the resource's own tag names (an endpoint's brokerRunId, a secret's run). It also names
the run that deployed it (the deployment's keysRunId, else its currentRunId; for run-stuck, the stuck run), the
tickets of the deployment's requests, and the rule's recommended action, naming the exact broker call.

When the deployments could not be read this scan, findings are marked unlinked, and their records keep the link
they had (findings.observe), so an unreadable store never erases what a finding was about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from shared.deployment import Deployment
from shared.hygiene.context import ScanContext, Source
from shared.hygiene.findings import Finding
from shared.hygiene.rules import Rule, RunStuck


def link_findings(
    context: ScanContext, findings: Mapping[str, Finding], rules: Mapping[str, Rule]
) -> dict[str, Finding]:
    """`findings` with their deployment, deploying run, tickets and recommended action filled in."""
    return {key: link(context, finding, rules[finding.rule]) for key, finding in findings.items()}


def link(context: ScanContext, finding: Finding, rule: Rule) -> Finding:
    linkable = finding.broker_managed or finding.origin_run_id is not None
    deployment: Deployment | None = None
    linked = True
    if linkable:
        if context.available(Source.DEPLOYMENTS):
            resource = None if rule.id == RunStuck.id else finding.resource_id
            deployment = context.deployment_for(resource, finding.origin_run_id)
            # Found by neither way, and the runs (the second way) were unreadable: not known, rather than none.
            linked = deployment is not None or finding.origin_run_id is None or context.available(Source.RUNS)
        else:
            linked = False
    return replace(
        finding,
        deployment_id=deployment.id if deployment else None,
        run_id=_run_id(finding, rule, deployment),
        tickets=_tickets(context, finding, rule, deployment),
        recommended_action=rule.recommend(finding, deployment),
        linked=linked,
    )


def tickets_of(deployment: Deployment) -> tuple[str, ...]:
    """The tickets of the deployment's requests, each once, oldest first."""
    return _unique(requester.ticket for requester in deployment.requests)


def _run_id(finding: Finding, rule: Rule, deployment: Deployment | None) -> str | None:
    if rule.id == RunStuck.id or deployment is None:
        return finding.origin_run_id
    return deployment.status.keys_run_id or deployment.status.current_run_id or finding.origin_run_id


def _tickets(context: ScanContext, finding: Finding, rule: Rule, deployment: Deployment | None) -> tuple[str, ...]:
    if deployment is not None:
        return tickets_of(deployment)
    if rule.id == RunStuck.id:
        run = next((run for run in context.active_runs or () if run.id == finding.origin_run_id), None)
        return _unique(requester.ticket for requester in run.requesters) if run else ()
    return ()


def _unique(tickets: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ticket for ticket in tickets if ticket))
