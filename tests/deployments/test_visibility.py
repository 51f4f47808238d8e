"""Who sees which runs and deployments (shared/deployments/visibility.py), and lists that stay full and exact when
most of what the store holds is hidden, over the in-memory world."""

from __future__ import annotations

import pytest

from shared.access import DEFAULT_APPROVER_ROLE, DEFAULT_AUDITOR_ROLE, AppRole, BrokerRoles, Caller
from shared.azure_errors import AzureCallError
from shared.deployments.visibility import WORKSPACE_READ_ACTION, Visibility, visible_page
from shared.runs import MAX_LISTED_JOINERS, RunRequester

from .fakes import FakeAuthorization
from .scenario import (
    AI_DEVELOPER_BLOCK,
    AUDITOR,
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    REQUESTER,
    RESOURCE_GROUP_SCOPE,
    WORKSPACE_ID,
    World,
    request,
)

COLLEAGUE = "c011ea90-0000-4000-8000-000000000002"
READER = "5eade700-0000-4000-8000-000000000003"
OUTSIDER = "0c751de0-0000-4000-8000-000000000004"
READ_ALL = {"actions": ["*/read"]}
UNAPPROVED_MODEL = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"


def caller(object_id: str, *roles: str, groups: tuple[str, ...] = ()) -> Caller:
    return Caller.of(object_id, roles=roles, groups=groups)


def access_reads(world: World) -> int:
    return len(world.authorization.calls_to("principal_access"))


@pytest.fixture
def shared_workspace(world: World) -> World:
    """The requester's deploy and a colleague's, in one project; a Reader of the resource group; an outsider."""
    world.authorization.grant(COLLEAGUE, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK], roles=["Azure AI Developer"])
    world.authorization.grant(READER, RESOURCE_GROUP_SCOPE, permissions=[READ_ALL], roles=["Reader"])
    world.deploy(DIRECT_MODEL)
    world.service.submit(request(MARKETPLACE_MODEL), caller=COLLEAGUE)
    world.drain()
    return world


def runs_seen_by(world: World, who: Caller, **filters: object) -> list[str]:
    return [run.caller for run in world.service.list(caller=who, page_size=50, **filters).items]


def test_a_requester_sees_their_own_request_without_read_access_to_the_workspace(shared_workspace: World):
    world = shared_workspace
    requester = caller(REQUESTER)
    mine = next(run for run in world.runs.all_runs if run.caller == REQUESTER)

    assert not world.service.visibility(requester).reads_workspace(WORKSPACE_ID), "AI Developer lacks workspaces/read"
    assert world.service.get(mine.id, caller=requester) is not None
    assert runs_seen_by(world, requester) == [REQUESTER]
    assert [item.spec.model_id for item in world.service.list_deployments(caller=requester).items] == [DIRECT_MODEL]
    assert world.service.get_deployment(mine.deployment_id, caller=requester) is not None


def test_another_requesters_run_and_deployment_are_answered_as_missing(shared_workspace: World):
    world = shared_workspace
    theirs = next(run for run in world.runs.all_runs if run.caller == COLLEAGUE)

    assert world.service.get(theirs.id, caller=caller(REQUESTER)) is None
    assert world.service.get_deployment(theirs.deployment_id, caller=caller(REQUESTER)) is None
    assert world.service.get(theirs.id, caller=caller(OUTSIDER)) is None
    assert runs_seen_by(world, caller(OUTSIDER)) == []
    assert world.service.list_deployments(caller=caller(OUTSIDER)).items == []


def test_a_reader_of_the_workspace_sees_every_request_in_it(shared_workspace: World):
    world = shared_workspace

    assert sorted(runs_seen_by(world, caller(READER))) == sorted([REQUESTER, COLLEAGUE])
    assert len(world.service.list_deployments(caller=caller(READER)).items) == 2


@pytest.mark.parametrize(
    "who",
    [caller(OUTSIDER, DEFAULT_AUDITOR_ROLE), caller(OUTSIDER, DEFAULT_APPROVER_ROLE)],
    ids=["auditor", "approver"],
)
def test_auditors_and_approvers_see_everything_without_any_azure_access(shared_workspace: World, who: Caller):
    world = shared_workspace
    reads_before = access_reads(world)

    assert sorted(runs_seen_by(world, who)) == sorted([REQUESTER, COLLEAGUE])
    assert len(world.service.list_deployments(caller=who).items) == 2
    assert access_reads(world) == reads_before, "the app role decides; Azure is not asked"


def test_app_roles_held_through_a_group_count_and_role_names_are_case_sensitive():
    group = "9a9a9a9a-0000-4000-8000-00000000a11d"
    roles = BrokerRoles(auditor=AppRole(DEFAULT_AUDITOR_ROLE, frozenset({group})))
    authorization = FakeAuthorization("broker")

    def sees(who: Caller) -> bool:
        return Visibility(who, roles=roles, authorization=authorization).sees(WORKSPACE_ID)

    assert sees(caller(OUTSIDER, groups=(group.upper(),)))
    assert not sees(caller(OUTSIDER, DEFAULT_AUDITOR_ROLE.lower()))


def test_a_request_that_joined_a_run_lets_its_caller_see_that_run(world: World):
    world.authorization.grant(COLLEAGUE, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])
    first = world.submit(MARKETPLACE_MODEL).run
    world.step()
    joined = world.service.submit(request(MARKETPLACE_MODEL), caller=COLLEAGUE, ticket="CHG-2")

    assert joined.answer == "joined"
    assert world.service.get(first.id, caller=caller(COLLEAGUE)) is not None
    assert [run.id for run in world.service.list(caller=caller(COLLEAGUE)).items] == [first.id]
    assert world.service.get_deployment(first.deployment_id, caller=caller(COLLEAGUE)) is not None
    assert world.service.get(first.id, caller=caller(OUTSIDER)) is None


def test_a_joiner_past_the_listed_ones_still_sees_the_run(world: World):
    first = world.submit(DIRECT_MODEL).run
    for number in range(MAX_LISTED_JOINERS + 5):
        joiner = RunRequester(
            caller=f"00000000-0000-4000-8000-{number:012d}", at=first.created_at, request_id=f"req-{number}"
        )
        world.runs.join_run(first.id, joiner, deployment_id=first.deployment_id)
    last = caller(f"00000000-0000-4000-8000-{MAX_LISTED_JOINERS + 4:012d}")

    view = world.service.get(first.id, caller=last)

    assert view is not None
    assert last.object_id not in {joiner.caller for joiner in view.joined}, "beyond the listed joiners"
    assert [run.id for run in world.service.list(caller=last).items] == [first.id]


def test_a_deny_assignment_hides_what_a_role_would_show(shared_workspace: World):
    world = shared_workspace
    denied = "de11ed00-0000-4000-8000-000000000005"
    world.authorization.grant(denied, RESOURCE_GROUP_SCOPE, permissions=[READ_ALL], roles=["Reader"])
    world.authorization.grant(denied, WORKSPACE_ID, denials=[{"actions": [WORKSPACE_READ_ACTION]}])

    assert runs_seen_by(world, caller(denied)) == []
    assert world.service.list_deployments(caller=caller(denied)).items == []


def test_workspace_access_is_read_once_per_workspace_in_a_request_and_again_in_the_next(world: World):
    for number in range(6):
        world.submit(DIRECT_MODEL, caller=f"0{number}000000-0000-4000-8000-000000000000")  # refused, but runs
    reads_before = access_reads(world)

    first = world.service.list(caller=caller(OUTSIDER), page_size=3)
    after_first = access_reads(world)
    world.service.list(caller=caller(OUTSIDER), page_size=3, continuation_token=first.continuation_token)

    assert first.items == []
    assert after_first - reads_before == 1, "six runs of one workspace, read over several store pages: one read"
    assert access_reads(world) - after_first == 1, "a new request judges again (the adapter may cache)"


def test_a_visibility_judges_each_workspace_once_and_a_refusal_is_not_read_fresh():
    authorization = FakeAuthorization("broker")
    authorization.answers_from_cache = True
    other = WORKSPACE_ID.replace("proj-a", "proj-b")
    authorization.grant(READER, other, permissions=[READ_ALL])
    visibility = Visibility(caller(READER), roles=BrokerRoles(), authorization=authorization)

    seen = [visibility.sees(workspace) for workspace in (WORKSPACE_ID, other, WORKSPACE_ID.upper(), other)]

    assert seen == [False, True, False, True]
    assert [(call.args[1], call.kwargs) for call in authorization.calls_to("principal_access")] == [
        (WORKSPACE_ID, {}),
        (other, {}),
    ]


def test_an_access_read_azure_refuses_hides_the_item_and_a_transient_one_is_raised():
    authorization = FakeAuthorization("broker")
    authorization.fail_next("principal_access", AzureCallError(404, "ResourceNotFound", "gone"))
    visibility = Visibility(caller(READER), roles=BrokerRoles(), authorization=authorization)

    assert not visibility.sees(WORKSPACE_ID)
    authorization.fail_next("principal_access", AzureCallError(503, "ServiceUnavailable", "later"))
    with pytest.raises(AzureCallError):
        Visibility(caller(READER), roles=BrokerRoles(), authorization=authorization).sees(WORKSPACE_ID)


def test_an_item_without_a_workspace_is_seen_only_by_its_requesters_and_the_app_roles():
    visibility = Visibility(caller(READER), roles=BrokerRoles(), authorization=FakeAuthorization("broker"))

    assert not visibility.sees(None)
    assert visibility.sees(None, requesters=[READER.upper()])
    auditor = Visibility(caller(READER, DEFAULT_AUDITOR_ROLE), roles=BrokerRoles(), authorization=FakeAuthorization(""))
    assert auditor.sees(None)


def test_a_finding_is_seen_in_a_readable_workspace_or_about_a_deployment_the_caller_requested(world: World):
    deployed = world.deploy(DIRECT_MODEL)
    hub = WORKSPACE_ID.replace("proj-a", "hub")  # where a cross-region deployment's endpoint, and finding, live
    world.authorization.grant(READER, hub, permissions=[READ_ALL])
    asked: list[str] = []

    def deployment(the_id: str):
        asked.append(the_id)
        return world.service.get_deployment(the_id, caller=AUDITOR)

    def visibility(who: Caller) -> Visibility:
        return Visibility(who, roles=BrokerRoles(), authorization=world.authorization, deployment=deployment)

    requester, reader = visibility(caller(REQUESTER)), visibility(caller(READER))

    assert [requester.sees_finding(hub, deployed.deployment_id) for _ in range(3)] == [True] * 3
    assert asked == [deployed.deployment_id], "each deployment is read once a request"
    assert not requester.sees_finding(hub, None)
    assert not requester.sees_finding(hub, "no-such-deployment")
    assert reader.sees_finding(hub, "no-such-deployment"), "the finding's workspace is readable"
    assert not visibility(caller(OUTSIDER)).sees_finding(hub, deployed.deployment_id)


# Filling pages: the store is asked for the count still missing, so its token resumes right after the page.


class Store:
    """Items 0..n-1 a page at a time, with tokens as offsets, recording the count each read asked for."""

    def __init__(self, size: int, *, short_pages: bool = False) -> None:
        self.items = list(range(size))
        self.asked: list[int] = []
        # Table Storage may answer fewer than asked (and a token) at partition boundaries or time limits.
        self.short_pages = short_pages

    def read(self, count: int, token: str | None) -> tuple[list[int], str | None]:
        self.asked.append(count)
        start = int(token or 0)
        end = min(start + (max(1, count // 2) if self.short_pages else count), len(self.items))
        return self.items[start:end], str(end) if end < len(self.items) else None


def walk(store: Store, visible, *, page_size: int, max_store_pages: int = 10) -> list[list[int]]:
    pages, token = [], None
    while True:
        page = visible_page(
            store.read, visible, page_size=page_size, continuation_token=token, max_store_pages=max_store_pages
        )
        pages.append(page.items)
        token = page.continuation_token
        if token is None:
            return pages


@pytest.mark.parametrize("short_pages", [False, True])
def test_pages_stay_full_and_every_visible_item_is_listed_once_when_most_are_hidden(short_pages: bool):
    store = Store(100, short_pages=short_pages)

    pages = walk(store, lambda item: item % 7 == 0, page_size=3, max_store_pages=100)

    assert [item for page in pages for item in page] == list(range(0, 100, 7))
    # A full page cannot know that nothing visible follows it: the page after the last item may be empty.
    assert [len(page) for page in pages] == [3, 3, 3, 3, 3, 0]
    assert max(store.asked) <= 3


def test_with_the_default_bound_short_pages_still_list_every_visible_item_once():
    pages = walk(Store(100, short_pages=True), lambda item: item % 7 == 0, page_size=3)

    assert [item for page in pages for item in page] == list(range(0, 100, 7))


def test_each_store_read_asks_for_just_the_count_still_missing():
    store = Store(20)

    page = visible_page(store.read, lambda item: item in (1, 2, 9), page_size=3, continuation_token=None)

    assert page.items == [1, 2, 9]
    assert store.asked == [3, 1, 1, 1, 1, 1, 1, 1]
    assert page.continuation_token == "10", "resumes right after the last item the page holds"


def test_a_page_still_short_after_the_store_page_bound_is_answered_with_its_token():
    store = Store(1000)

    page = visible_page(store.read, lambda item: item == 999, page_size=5, continuation_token=None, max_store_pages=4)

    assert page.items == []
    assert len(store.asked) == 4
    assert page.continuation_token == "20"
    assert [item for found in walk(Store(1000), lambda item: item == 999, page_size=5) for item in found] == [999]


def test_a_last_page_ends_the_list_even_when_short():
    page = visible_page(Store(4).read, lambda item: item != 0, page_size=10, continuation_token=None)

    assert (page.items, page.continuation_token) == ([1, 2, 3], None)


def test_run_lists_page_through_what_the_caller_sees_with_exact_tokens(world: World):
    for number in range(12):
        if number % 4 == 0:  # the requester's own, refused (a model not approved): a run each
            world.submit(UNAPPROVED_MODEL, ticket=f"T-{number}")
        else:  # strangers without the deploy permission, refused too
            world.submit(DIRECT_MODEL, caller=f"0{number % 10}000000-0000-4000-8000-000000000000", ticket=f"T-{number}")
    everything = world.service.list(caller=caller(OUTSIDER, DEFAULT_AUDITOR_ROLE), page_size=50).items
    mine = [run.id for run in everything if run.caller == REQUESTER]

    pages, token = [], None
    while True:
        page = world.service.list(caller=caller(REQUESTER), page_size=1, continuation_token=token)
        pages.append([run.id for run in page.items])
        token = page.continuation_token
        if token is None:
            break

    assert [run_id for page in pages for run_id in page] == mine
    assert len(mine) == 3
    assert all(len(page) == 1 for page in pages[:-1])
