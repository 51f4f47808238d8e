"""Who sees which deployments, runs and hygiene findings, and lists that stay full when most of a page is hidden.

A caller sees an item when any of these holds:
1. they hold the broker's auditor or approver app role (approvers review requests across the organisation, so they
   read what auditors read);
2. it is their own request: a run they started or joined, a deployment whose request history names them, a hygiene
   finding about such a deployment;
3. they may read its workspace (`Microsoft.MachineLearningServices/workspaces/read`): the request's for a run or a
   deployment, the finding's own for a finding. It is judged by the RBAC evaluation preflight uses: the principal's
   role assignments, their definitions and the deny assignments that apply, read through the authorization port
   (whose adapter caches them for BROKER_ACCESS_CACHE_SECONDS) and evaluated by shared.rbac.PermissionSet.
An item the caller may not see is answered exactly as a missing one (404), so its existence does not leak; lists
drop it silently and read on to fill the page (`visible_page`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.access import BrokerRoles, Caller
from shared.azure_errors import AzureCallError
from shared.deployment import Deployment
from shared.ports import AuthorizationPort
from shared.rbac import PermissionSet
from shared.runs import RunRecord, RunRequester

LOGGER = logging.getLogger(__name__)
WORKSPACE_READ_ACTION = "Microsoft.MachineLearningServices/workspaces/read"
# How many store pages one list request reads at most to fill its page; a page still short then is answered as it
# is, with the token to read on from.
MAX_STORE_PAGES = 10

Item = TypeVar("Item")
# Reads `count` items at most from a continuation token: the items and the token after the last one (None: no more).
StoreRead = Callable[[int, str | None], tuple[Sequence[Item], str | None]]


class Visibility:
    """What one caller may see, for the length of one request: each workspace's access, and each deployment a finding
    is about, is read at most once. `deployment` reads a deployment as the API shows it (None: there is none)."""

    def __init__(
        self,
        caller: Caller,
        *,
        roles: BrokerRoles,
        authorization: AuthorizationPort,
        deployment: Callable[[str], Deployment | None] = lambda _: None,
    ) -> None:
        self._object_id = caller.object_id.lower()
        self._authorization = authorization
        self._deployment = deployment
        self._sees_everything = roles.auditor.held_by(caller) or roles.approver.held_by(caller)
        self._workspaces: dict[str, bool] = {}
        self._deployments: dict[str, bool] = {}

    @property
    def sees_everything(self) -> bool:
        """Whether the caller holds the auditor or the approver role, and so sees every workspace."""
        return self._sees_everything

    def sees(self, workspace_id: str | None, *, requesters: Iterable[str] = ()) -> bool:
        """Whether the caller sees an item of `workspace_id` that `requesters` (object ids) asked for.

        Cheapest first: the app roles, then the requesters (an iterable, read only as far as needed, so a long list
        can be read lazily), then the workspace's access.
        """
        if self._sees_everything:
            return True
        if any(requester.lower() == self._object_id for requester in requesters):
            return True
        return bool(workspace_id) and self.reads_workspace(workspace_id)

    def sees_run(self, run: RunRecord, *, all_joiners: Callable[[], Iterable[RunRequester]] = tuple) -> bool:
        """Whether the caller sees `run` (as the API shows it): started or joined it, or may read its request's
        workspace. Its `joined` view lists the first joiners only; `all_joiners` reads them all, and is called only
        when that view is cut short and nothing before has decided."""

        def requesters() -> Iterator[str]:
            yield from (requester.caller for requester in run.requesters)
            if run.joined_count > len(run.joined):
                yield from (joiner.caller for joiner in all_joiners())

        return self.sees(run.request.workspace_id, requesters=requesters())

    def sees_deployment(self, deployment: Deployment) -> bool:
        """Whether the caller sees `deployment` (as the API shows it): named in its request history, or may read the
        workspace of its spec. The history inline is bounded (the newest MAX_INLINE_REQUESTS requests, joiners
        included), and that is enough for "their own request": one pushed out of it long ago still sees the runs
        that answered them."""
        return self.sees(deployment.spec.workspace_id, requesters=(item.caller for item in deployment.requests))

    def sees_finding(self, workspace_id: str | None, deployment_id: str | None) -> bool:
        """Whether the caller sees a hygiene finding: in a workspace they may read, or about a deployment they see
        (their own request; for a cross-region deployment, whose endpoint lives in the hub, the project that asked)."""
        if self.sees(workspace_id):
            return True
        if not deployment_id:
            return False
        if deployment_id not in self._deployments:
            found = self._deployment(deployment_id)
            self._deployments[deployment_id] = found is not None and self.sees_deployment(found)
        return self._deployments[deployment_id]

    def reads_workspace(self, workspace_id: str) -> bool:
        """Whether the caller may read the workspace, as RBAC evaluates its role and deny assignments there.

        Unlike the requester check, a refusal is taken from the adapter's cache too: a grant made meanwhile shows
        within the cache window, and a list that hides many workspaces costs no fresh reads. An access read Azure
        refuses for good (the workspace or its scope is gone) hides the item; a transient failure is raised, so the
        caller retries rather than trusting a page emptied by an outage.
        """
        key = workspace_id.lower()
        if key not in self._workspaces:
            self._workspaces[key] = self._read_access(workspace_id)
        return self._workspaces[key]

    def _read_access(self, workspace_id: str) -> bool:
        try:
            access = self._authorization.principal_access(self._object_id, workspace_id)
        except AzureCallError as error:
            if error.transient:
                raise
            LOGGER.warning(
                "access of %s to %s could not be read (%s); its items stay hidden",
                self._object_id,
                workspace_id,
                error.code,
            )
            return False
        return PermissionSet.from_rest(access.permissions, access.denials).allows(WORKSPACE_READ_ACTION)


@dataclass(frozen=True)
class VisiblePage(Generic[Item]):
    """A page of what the caller may see, and the token to read on from (None after the last one)."""

    items: list[Item]
    continuation_token: str | None


def visible_page(
    read: StoreRead[Item],
    visible: Callable[[Item], bool],
    *,
    page_size: int,
    continuation_token: str | None,
    max_store_pages: int = MAX_STORE_PAGES,
) -> VisiblePage[Item]:
    """Up to `page_size` items that `visible` keeps, read from `continuation_token` on.

    Each store read asks only for the count still missing, so nothing is read past the page's last item and the
    token that comes back resumes right after it: no item is skipped or shown twice, however many are hidden. After
    `max_store_pages` reads a page still short is answered with its token, and the caller's next request reads on.
    """
    kept: list[Item] = []
    token = continuation_token
    for _ in range(max_store_pages):
        items, token = read(page_size - len(kept), token)
        kept.extend(item for item in items if visible(item))
        if len(kept) >= page_size or not token:
            break
    return VisiblePage(kept, token)
