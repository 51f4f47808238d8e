"""Requests that join a run in flight: each writes its own joiner row, never the run or the deployment, and hears
the run's end from whoever announces it, or from itself when the run ended while it joined."""

from collections import Counter
from datetime import timedelta

import pytest

from shared.adapters.run_store import JOINERS
from shared.azure_errors import RecordChangedError
from shared.deployment import MAX_INLINE_REQUESTS
from shared.events import EVENT_TYPE_PREFIX
from shared.run_outcomes import announce, join_in_flight
from shared.runs import MAX_LISTED_JOINERS, RunRequester, RunStatus

from .fakes import MAX_PROPERTY_BYTES, InMemoryDocumentTable, PropertyValueTooLargeError
from .scenario import AUDITOR, DIRECT_MODEL, MARKETPLACE_MODEL, request
from .test_round_trips import count_round_trips
from .test_service import allow

COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
MANY_JOINERS = 300


def events_of(world, kind):
    return [body for body in world.events.bodies if body["type"] == f"{EVENT_TYPE_PREFIX}.{kind}"]


def tickets_per_event(world, kind) -> Counter:
    return Counter(event["data"]["ticket"] for event in events_of(world, kind))


def test_three_hundred_joiners_each_hear_accepted_and_succeeded_and_the_run_still_succeeds(world):
    allow(world, COLLEAGUE)
    first = world.submit(MARKETPLACE_MODEL, ticket="CHG-0").run
    world.step()

    answers = [world.submit(MARKETPLACE_MODEL, caller=COLLEAGUE, ticket=f"CHG-{n}") for n in range(1, MANY_JOINERS + 1)]
    world.drain()

    assert {(answer.answer, answer.run.id) for answer in answers} == {("joined", first.id)}
    assert world.run(first.id).status is RunStatus.SUCCEEDED
    assert world.runs.conflicts == 0, "joins never contend"
    everyone = Counter({f"CHG-{n}": 1 for n in range(MANY_JOINERS + 1)})
    assert tickets_per_event(world, "accepted") == everyone
    assert tickets_per_event(world, "succeeded") == everyone
    assert len({event["id"] for event in world.events.bodies}) == len(world.events.bodies)
    view = world.service.get(first.id, caller=AUDITOR)
    assert (view.joined_count, len(view.joined)) == (MANY_JOINERS, MAX_LISTED_JOINERS)
    assert [joiner.ticket for joiner in view.joined] == [f"CHG-{n}" for n in range(1, MAX_LISTED_JOINERS + 1)]
    history = world.service.get_deployment(first.deployment_id, caller=AUDITOR)
    assert (history.request_count, len(history.requests)) == (MANY_JOINERS + 1, MAX_INLINE_REQUESTS)
    assert [run.id for run in world.service.list(ticket=f"CHG-{MANY_JOINERS}", caller=AUDITOR).items] == [first.id]


def test_a_run_that_ends_while_a_request_joins_it_is_announced_to_that_request_by_the_request(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL, ticket="CHG-1").run
    # The run ends and is announced after the joiner read it in flight, before its joiner row is written.
    world.runs.before_next("join_run", world.drain)

    joined = world.submit(DIRECT_MODEL, caller=COLLEAGUE, ticket="CHG-2")

    assert (joined.answer, joined.run.id, joined.run.status) == ("joined", first.id, RunStatus.SUCCEEDED)
    assert [(event["data"]["ticket"]) for event in events_of(world, "succeeded")] == ["CHG-1", "CHG-2"]
    (joiner,) = world.runs.joiners(first.id)
    assert [event["id"] for event in events_of(world, "succeeded")][-1] == f"{first.id}/succeeded/{joiner.request_id}"
    assert world.event_types()[-2:] == ["accepted", "succeeded"], "the joiner hears accepted first"


def test_an_announcer_and_a_late_joiner_both_sending_the_end_send_the_same_event(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL, ticket="CHG-1").run
    world.runs.before_next("join_run", world.drain)
    world.submit(DIRECT_MODEL, caller=COLLEAGUE, ticket="CHG-2")
    sent_by_joiner = events_of(world, "succeeded")[-1]

    # The run's end announced again (a repeated announce) now that the joiner row exists.
    ended = world.run(first.id)
    announce(world.events, ended, ended.updated_at, joiners=world.runs.joiners(first.id))

    assert events_of(world, "succeeded")[-1]["id"] == sent_by_joiner["id"]
    assert len({event["id"] for event in events_of(world, "succeeded")}) == 2


def test_a_run_that_ended_before_the_request_joined_is_not_joined(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL).run
    world.drain()
    ended = world.run(first.id)

    with pytest.raises(RecordChangedError):
        join_in_flight(
            world.runs,
            world.events,
            ended,
            world.deployment(),
            request_id="req-late",
            caller=COLLEAGUE,
            ticket=None,
            idempotency_key=None,
            at=ended.updated_at,
        )
    assert world.runs.joiners(first.id) == []


def test_a_joiner_with_an_idempotency_key_replays_to_the_run_it_joined_and_joins_once(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL).run

    joined = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE, idempotency_key="key-1")
    again = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE, idempotency_key="key-1")

    assert (joined.answer, again.answer, again.run.id) == ("joined", "replayed", first.id)
    assert again.run.joined_count == 1
    assert len(world.runs.joiners(first.id)) == 1


def test_a_redelivered_join_writes_its_joiner_row_once(world):
    first = world.submit(DIRECT_MODEL).run
    joiner = RunRequester(caller=COLLEAGUE, ticket="CHG-2", at=first.created_at, request_id="req-2")

    world.runs.join_run(first.id, joiner, deployment_id=first.deployment_id)
    world.runs.join_run(first.id, joiner, deployment_id=first.deployment_id)

    assert world.runs.joiners(first.id) == [joiner]
    assert [run.id for run in world.service.list(ticket="CHG-2", caller=AUDITOR).items] == [first.id]


def test_joins_write_no_run_or_deployment_row(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL).run
    run_before, deployment_before = world.runs.get(first.id), world.runs.get_deployment(first.deployment_id)

    for _ in range(3):
        world.submit(DIRECT_MODEL, caller=COLLEAGUE)

    assert world.runs.get(first.id) == run_before
    assert world.runs.get_deployment(first.deployment_id) == deployment_before


def test_the_deployment_history_leaves_out_joiners_of_runs_before_it_was_made_afresh(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL).run
    world.submit(DIRECT_MODEL, caller=COLLEAGUE)
    stored = world.deployment()
    later = stored.created_at + timedelta(hours=1)
    fresh = stored.model_copy(update={"created_at": later, "requests": (), "request_count": 1})

    assert world.runs.deployment_view(fresh).requests == ()
    assert world.runs.deployment_view(stored).request_count == 2
    assert world.runs.joiners(first.id)[0].caller == COLLEAGUE


# The in-memory table keeps Table Storage's rules, so the store is tested against them.


def test_the_in_memory_table_refuses_a_document_over_64_kib_as_table_storage_does():
    table = InMemoryDocumentTable()

    with pytest.raises(PropertyValueTooLargeError):
        table.create("p", "k", {"text": "x" * (MAX_PROPERTY_BYTES // 2)}, {})
    table.create("p", "k", {"text": "x" * (MAX_PROPERTY_BYTES // 2 - 100)}, {})


def test_the_in_memory_table_answers_queries_in_key_order_and_widens_them_by_one_key():
    table = InMemoryDocumentTable()
    for key in ("run:b", "joiner:b:2", "joiner:b:1", "ticket:x"):
        table.create("p", key, {"key": key}, {"Kind": key.split(":")[0]})

    page = table.query("p", {"Kind": JOINERS}, page_size=10, or_key="run:b")

    assert [document["key"] for document in page.documents] == ["joiner:b:1", "joiner:b:2", "run:b"]


def test_a_run_read_for_the_api_is_one_query_for_the_run_and_its_joiners(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL).run
    world.submit(DIRECT_MODEL, caller=COLLEAGUE, ticket="CHG-2")
    counted = count_round_trips(world)

    view = world.service.get(first.id, caller=AUDITOR)

    assert counted == {"query": 1}
    assert (view.joined_count, [joiner.ticket for joiner in view.joined]) == (1, ["CHG-2"])
    assert world.service.get("nobody.0000abcd", caller=AUDITOR) is None
