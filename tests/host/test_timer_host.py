"""Timer trigger rules, through the real host subprocess running tests/host/apps/timer_app."""

import itertools
from datetime import UTC, datetime

import pytest

from .helpers import APPS, call, running_host, wait_for_markers

MASTER_KEY = "timer-master-key"


@pytest.fixture(scope="module")
def host(marker_dir, tmp_path_factory):
    env = {"MARKER_DIR": str(marker_dir), "DEVSTACK_HOST_MASTER_KEY": MASTER_KEY}
    with running_host(APPS / "timer_app", env=env, log_dir=tmp_path_factory.mktemp("timer-host")) as running:
        yield running


def test_a_six_field_schedule_fires_on_its_seconds(host, marker_dir):
    first, second = wait_for_markers(marker_dir, "every_two_seconds", 2, timeout=8)[:2]

    assert int(first["at"]) % 2 == 0
    assert int(second["at"]) % 2 == 0
    assert 1.8 <= second["at"] - first["at"] <= 2.5
    assert not first["past_due"]
    assert not second["past_due"]


def test_run_on_startup_fires_once_at_start_with_the_schedule_from_a_setting(host, marker_dir):
    [marker] = wait_for_markers(marker_dir, "on_startup", 1)

    # %NEW_YEAR_SCHEDULE% resolved to "0 0 0 1 Jan *": the next occurrence is next New Year.
    next_new_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert marker["next"] == next_new_year.isoformat()
    assert marker["past_due"] is False


def test_an_occurrence_missed_during_a_run_starts_late_as_past_due_without_overlap(host, marker_dir):
    runs = wait_for_markers(marker_dir, "slower_than_its_schedule", 3, timeout=10)[:3]

    assert [run["past_due"] for run in runs] == [False, True, True]
    assert all(later["started"] >= earlier["finished"] for earlier, later in itertools.pairwise(runs))


def test_admin_invoke_runs_a_timer_function_now(host, marker_dir):
    reply = call(f"{host.url}/admin/functions/on_demand", "POST", headers={"x-functions-key": MASTER_KEY})

    assert reply.status == 202
    [marker] = wait_for_markers(marker_dir, "on_demand", 1)
    assert marker["past_due"] is False
    [record] = host.wait_for_invocations(lambda record: record["function"] == "on_demand")
    assert (record["trigger"], record["outcome"]) == ("timerTrigger", "Succeeded")
