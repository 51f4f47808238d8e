"""How many storage round trips (table operations, queue sends) intake costs per accepted request.

The counts are behaviour, not timing: each case states what intake reads and writes, so a change that adds a round
trip to the accept path shows here. A transaction (one entity-group batch) is one round trip.
"""

from collections import Counter

import pytest

from .scenario import DIRECT_MODEL, REQUESTER, request
from .test_service import allow

COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
TABLE_OPERATIONS = ("get", "create", "replace", "delete", "query", "transact")


def count_round_trips(world) -> Counter:
    """Counts every table operation and queue send from now on, by name."""
    counted: Counter = Counter()
    table = world.runs.table
    for name in TABLE_OPERATIONS:
        original = getattr(table, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            counted[_name] += 1
            return _original(*args, **kwargs)

        setattr(table, name, counting)
    for queue_name, queue in (("work", world.work), ("events", world.events)):
        send = queue.send

        def counting_send(message, *, delay_seconds=0, _send=send, _name=queue_name):
            counted[f"send:{_name}"] += 1
            return _send(message, delay_seconds=delay_seconds)

        queue.send = counting_send
    return counted


def test_a_new_request_reads_its_deployment_once_and_writes_claim_run_and_ticket_in_one_transaction(world):
    counted = count_round_trips(world)

    submission = world.service.submit(request(DIRECT_MODEL, ticket="CHG-1"), caller=REQUESTER)

    assert submission.answer == "created"
    assert counted == {"get": 1, "transact": 1, "send:work": 1, "send:events": 1}


def test_a_new_request_with_an_idempotency_key_claims_the_key_first(world):
    counted = count_round_trips(world)

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert submission.answer == "created"
    assert counted == {"create": 1, "get": 1, "transact": 1, "send:work": 1, "send:events": 1}


def test_a_request_joining_a_run_in_flight_writes_only_its_own_rows_then_reads_the_run_again(world):
    allow(world, COLLEAGUE)
    world.submit(DIRECT_MODEL)
    counted = count_round_trips(world)

    submission = world.service.submit(request(DIRECT_MODEL, ticket="CHG-2"), caller=COLLEAGUE)

    assert submission.answer == "joined"
    # Reads: the deployment and its run; the joiner and ticket rows in one transaction; then one query for the run
    # and its joiners (whether it ended meanwhile, and the answer's `joined` view).
    assert counted == {"get": 2, "transact": 1, "query": 1, "send:events": 1}
    assert world.runs.table.conflicts == 0


@pytest.mark.parametrize("ticket", [None, "CHG-3"])
def test_a_ready_answer_reads_the_deployment_and_writes_it_with_the_ticket_row_once(world, ticket):
    world.deploy()
    counted = count_round_trips(world)

    submission = world.service.submit(request(DIRECT_MODEL, ticket=ticket), caller=REQUESTER)

    assert submission.answer == "ready"
    # The query reads the requests that joined its runs, for the history the answer shows.
    assert counted == {"get": 1, "transact": 1, "query": 1, "send:events": 2}
