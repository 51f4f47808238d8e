from datetime import UTC, datetime, timedelta, timezone

import pytest

from devstack.host.ncrontab import ScheduleError, parse_ncrontab

START = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)  # a Thursday


def _occurrences(expression: str, count: int, start: datetime = START) -> list[datetime]:
    schedule, moments = parse_ncrontab(expression), []
    for _ in range(count):
        start = schedule.next_after(start)
        moments.append(start)
    return moments


def test_the_first_field_is_seconds():
    assert _occurrences("*/2 * * * * *", 3) == [START + timedelta(seconds=s) for s in (2, 4, 6)]
    assert _occurrences("30 * * * * *", 2) == [START + timedelta(seconds=30), START + timedelta(seconds=90)]


def test_minutes_hours_and_names():
    assert _occurrences("0 */5 * * * *", 2) == [START + timedelta(minutes=5), START + timedelta(minutes=10)]
    assert _occurrences("0 30 9 * Jan Mon-Fri", 2) == [
        datetime(2026, 1, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
    ]


def test_day_and_day_of_week_must_both_match():
    # Cron's rule would fire on every 13th and every Friday; NCRONTAB fires only on Friday the 13th.
    assert _occurrences("0 0 12 13 * Fri", 2) == [
        datetime(2026, 2, 13, 12, tzinfo=UTC),
        datetime(2026, 3, 13, 12, tzinfo=UTC),
    ]


def test_an_occurrence_is_strictly_after_the_moment_and_in_utc():
    on_the_dot = START + timedelta(seconds=2)
    elsewhere = datetime(2026, 1, 1, 1, 0, 1, tzinfo=timezone(timedelta(hours=1)))

    assert parse_ncrontab("*/2 * * * * *").next_after(on_the_dot) == START + timedelta(seconds=4)
    assert parse_ncrontab("*/2 * * * * *").next_after(elsewhere) == START + timedelta(seconds=2)


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",  # five fields: no seconds
        "0 0 * * * * *",  # seven fields
        "60 * * * * *",
        "0 0 24 * * *",
        "0 0 0 0 * *",
        "0 0 0 * 13 *",
        "0 0 0 * * 7",
        "0 0 0 L * *",
        "0 0 0 * * 5#3",
        "0 0 0 ? * *",
        "*/0 * * * * *",
        "0 0 5-1 * * *",
        "0 0 0 * Foo *",
    ],
)
def test_what_ncrontab_rejects(expression):
    with pytest.raises(ScheduleError):
        parse_ncrontab(expression)
