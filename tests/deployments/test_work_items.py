"""Work queue messages: what the workflow writes, it reads back; anything else is refused as malformed."""

import json

import pytest

from shared.deployments.work import PROVISION, STEPS, STORE_KEYS, SUBSCRIBE, MalformedWorkItemError, WorkItem

URL = "https://management.example.test/operations/1?api-version=2024-01-01-preview"


def test_a_message_leaves_out_the_operation_until_there_is_one():
    assert WorkItem("run-1", SUBSCRIBE).to_message() == {"run_id": "run-1", "step": SUBSCRIBE, "attempt": 0}
    assert WorkItem("run-1", SUBSCRIBE, URL, 2).to_message()["operation_url"] == URL


@pytest.mark.parametrize("item", [WorkItem("run-1", step) for step in STEPS] + [WorkItem("run-1", PROVISION, URL, 3)])
def test_a_message_reads_back_as_the_item_it_came_from(item):
    assert WorkItem.from_message(json.dumps(item.to_message())) == item


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not a work item"),
        ("[1, 2]", "not a work item"),
        ('{"run_id": "run-1", "step": "provision", "colour": "blue"}', "not a work item"),
        ('{"step": "provision"}', "not a work item"),
        ('{"run_id": "run-1", "step": "deploy"}', "unknown step 'deploy'"),
        ('{"run_id": 7, "step": "provision"}', "unknown step"),
    ],
)
def test_anything_else_is_malformed(text, reason):
    with pytest.raises(MalformedWorkItemError, match=reason):
        WorkItem.from_message(text)


def test_polling_an_operation_starts_its_attempts_afresh():
    item = WorkItem("run-1", PROVISION, attempt=3).polling(URL)

    assert (item.operation_url, item.attempt) == (URL, 0)


def test_a_retry_counts_the_attempt_and_keeps_the_operation():
    assert WorkItem("run-1", PROVISION, URL, 1).retried() == WorkItem("run-1", PROVISION, URL, 2)


def test_the_next_step_starts_clean():
    assert WorkItem("run-1", PROVISION, URL, 4).next(STORE_KEYS) == WorkItem("run-1", STORE_KEYS)
