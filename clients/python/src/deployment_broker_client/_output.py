"""What the `broker` command prints for people: aligned tables, key-value details and one line per run step.

Pure functions of the models, so the CLI's formatting is tested without a broker. Times are shown in UTC; ARM ids
and model ids are shortened to their names in tables (the detail views and `--output json` keep them whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from deployment_broker_client._models import (
    Deployment,
    Finding,
    KeyRotation,
    ModelAvailability,
    ModelListing,
    Problem,
    Run,
    RunStatus,
    RunStep,
    WhatIf,
)

EMPTY = "-"
COLUMN_GAP = "  "


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, with no trailing spaces; an empty cell shows as `-`."""
    lines = [list(headers), *([cell or EMPTY for cell in row] for row in rows)]
    widths = [max(len(line[index]) for line in lines) for index in range(len(headers))]
    return "\n".join(
        COLUMN_GAP.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else EMPTY


def short_name(resource_id: str | None) -> str:
    """The last segment of an ARM id or model id (`.../workspaces/demo-project` -> `demo-project`)."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else EMPTY


def deployments_table(deployments: Iterable[Deployment]) -> str:
    return table(
        ("ID", "PHASE", "MODEL", "WORKSPACE", "ENDPOINT", "UPDATED"),
        (
            (
                item.id,
                str(item.status.phase),
                short_name(item.spec.model_id),
                short_name(item.spec.workspace_id),
                item.spec.endpoint_name,
                when(item.updated_at),
            )
            for item in deployments
        ),
    )


def runs_table(runs: Iterable[Run]) -> str:
    return table(
        ("ID", "OPERATION", "STATUS", "MODEL", "WORKSPACE", "TICKET", "UPDATED"),
        (
            (
                run.id,
                run.operation,
                str(run.status),
                short_name(run.model_id),
                short_name(run.workspace_id),
                run.ticket or EMPTY,
                when(run.updated_at),
            )
            for run in runs
        ),
    )


def findings_table(findings: Iterable[Finding]) -> str:
    return table(
        ("RULE", "SEVERITY", "STATE", "RESOURCE", "DEPLOYMENT", "SUMMARY"),
        (
            (
                finding.rule,
                finding.severity,
                finding.state,
                short_name(finding.resource_id),
                finding.deployment_id or EMPTY,
                finding.summary,
            )
            for finding in findings
        ),
    )


def details(pairs: Iterable[tuple[str, str | None]]) -> str:
    """`name: value` lines, names aligned; pairs whose value is None are left out."""
    shown = [(name, value) for name, value in pairs if value is not None]
    width = max((len(name) for name, _ in shown), default=0)
    return "\n".join(f"{(name + ':').ljust(width + 1)} {value}" for name, value in shown)


def deployment_detail(deployment: Deployment) -> str:
    status = deployment.status
    secrets = status.secret_ids
    summary = details(
        [
            ("id", deployment.id),
            ("phase", str(status.phase)),
            ("workspace", deployment.spec.workspace_id),
            ("model", deployment.spec.model_id),
            ("endpoint name", deployment.spec.endpoint_name),
            ("scoring uri", status.endpoint.scoring_uri if status.endpoint else None),
            ("primary key secret", secrets.primary if secrets else None),
            ("secondary key secret", secrets.secondary if secrets else None),
            ("current run", status.current_run_id),
            ("keys run", status.keys_run_id),
            ("delete run", status.delete_run_id),
            ("open findings", ", ".join(status.open_findings) or None),
            ("error", f"{status.error.code}: {status.error.message}" if status.error else None),
            ("updated", when(deployment.updated_at)),
        ]
    )
    conditions = table(
        ("CONDITION", "STATUS", "REASON", "MESSAGE"),
        ((item.type, item.status, item.reason, item.message) for item in status.conditions),
    )
    return f"{summary}\n\n{conditions}" if status.conditions else summary


def run_detail(run: Run) -> str:
    summary = details(
        [
            ("id", run.id),
            ("operation", run.operation),
            ("status", str(run.status)),
            ("deployment", run.deployment_id),
            ("workspace", run.workspace_id),
            ("model", run.model_id),
            ("ticket", run.ticket),
            ("scoring uri", run.endpoint.scoring_uri if run.endpoint else None),
            ("primary key secret", run.secret_ids.primary if run.secret_ids else None),
            ("secondary key secret", run.secret_ids.secondary if run.secret_ids else None),
            ("error", f"{run.error.code}: {run.error.message}" if run.error else None),
            ("joined", str(run.joined_count) if run.joined_count else None),
            ("warnings", "; ".join(run.warnings) or None),
        ]
    )
    steps = table(
        ("AT", "STATUS", "DETAIL"), ((when(step.at), str(step.status), step.detail or EMPTY) for step in run.steps)
    )
    parts = [summary, steps]
    if run.key_rotations:
        parts.append(
            table(
                ("ROTATION", "KEY", "STATUS", "REQUESTED", "COMPLETED"),
                (
                    (item.id, str(item.key_type), str(item.status), when(item.requested_at), when(item.completed_at))
                    for item in run.key_rotations
                ),
            )
        )
    return "\n\n".join(parts)


def rotation_detail(rotation: KeyRotation) -> str:
    return details(
        [
            ("rotation", rotation.id),
            ("key", str(rotation.key_type)),
            ("status", str(rotation.status)),
            ("trigger", rotation.trigger),
            ("requested", when(rotation.requested_at)),
            ("secret", rotation.secret_id),
            ("expires", when(rotation.expires_on) if rotation.expires_on else None),
            ("completed", when(rotation.completed_at) if rotation.completed_at else None),
            ("error", f"{rotation.error.code}: {rotation.error.message}" if rotation.error else None),
        ]
    )


def availability_detail(availability: ModelAvailability) -> str:
    regions = availability.supported_regions
    workspace = availability.workspace
    fits = None
    if workspace is not None:
        verdict = {True: "offered", False: "not offered", None: "unknown"}[workspace.supported]
        fits = f"{short_name(workspace.id)} ({workspace.location}): {verdict}"
    return details(
        [
            ("model", availability.model_id),
            ("sold", "directly by Azure" if availability.sold_directly else "through Azure Marketplace"),
            ("regions", ", ".join(regions) if regions is not None else "not in the catalog"),
            ("workspace", fits),
            ("why", availability.explanation or None),
        ]
    )


def models_table(models: Iterable[ModelListing]) -> str:
    """One model a row: how it is sold, whether the project's region offers it (else a hub that does), whether the
    policies allow it (the rule that refuses), and whether an approver must agree (the rule that asks)."""
    return table(
        ("MODEL", "PUBLISHER", "SOLD", "REGION", "POLICY", "APPROVAL"),
        (
            (
                short_name(item.model_id),
                item.publisher,
                "directly" if item.sold_directly else "marketplace",
                _region_cell(item),
                _policy_cell(item),
                f"required ({item.approval.rule})" if item.approval.required else "no",
            )
            for item in models
        ),
    )


def _region_cell(item: ModelListing) -> str:
    region = item.region
    if region.location is None:
        return "not read"
    if region.offered is None:
        return f"{region.location}: unknown"
    if region.offered:
        return f"{region.location}: offered"
    hub = region.cross_region_hub
    return f"{region.location}: not offered" + (f" (hub {short_name(hub.workspace_id)})" if hub else "")


def _policy_cell(item: ModelListing) -> str:
    if not item.workspace.allowed:
        return f"workspace not allowed ({item.workspace.rule})"
    return "allowed" if item.policy.allowed else f"not approved ({item.policy.rule})"


def what_if_detail(what_if: WhatIf) -> str:
    summary = details(
        [
            ("verdict", str(what_if.verdict)),
            ("outcome", what_if.outcome),
            ("deployment", what_if.deployment_id),
            ("summary", what_if.summary),
            ("run joined", what_if.run_id),
            ("approval", what_if.approval_reason),
            ("warnings", "; ".join(what_if.warnings) or None),
        ]
    )
    checks = table(
        ("CHECK", "OUTCOME", "DETAIL"), ((check.name, check.outcome, check.detail) for check in what_if.checks)
    )
    plan = table(
        ("ACTION", "WRITES", "TARGET"), ((step.action, step.write, short_name(step.target)) for step in what_if.plan)
    )
    return "\n\n".join([summary, checks, *([plan] if what_if.plan else [])])


def problem_text(problem: Problem) -> str:
    """One line for people, then each field error the problem lists."""
    head = f"{problem.status or ''} {problem.slug}: {problem.detail or problem.title or ''}".strip()
    errors = problem.extensions.get("errors")
    lines = [head]
    if isinstance(errors, list):
        lines += [f"  {item.get('field')}: {item.get('message')}" for item in errors if isinstance(item, dict)]
    if problem.run_id:
        lines.append(f"  recorded as run {problem.run_id}")
    return "\n".join(lines)


def step_line(run: Run, step: RunStep) -> str:
    """The progress line for one step of a run; a run waiting for an approver says so."""
    waiting = step.status == RunStatus.PENDING_APPROVAL
    note = f"waiting for an approver (broker approve|reject {run.id})" if waiting else step.detail or ""
    return f"{when(step.at)}  {run.operation} {run.id}  {step.status}{'  ' + note if note else ''}"
