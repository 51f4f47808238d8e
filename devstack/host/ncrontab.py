"""Timer schedules: NCRONTAB with seconds first, `{second} {minute} {hour} {day} {month} {day-of-week}`, in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names accepted in place of numbers)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|(?P<low>\w+)(?:-(?P<high>\w+))?)(?:/(?P<step>\d+))?$")


class ScheduleError(ValueError):
    """The expression is not a six-field NCRONTAB schedule."""


@dataclass(frozen=True)
class NcrontabSchedule:
    expression: str

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (an aware datetime), in UTC."""
        # NCrontab requires both the day and the day-of-week fields to match (cron's OR rule does not apply).
        schedule = croniter(self.expression, moment.astimezone(UTC), second_at_beginning=True, day_or=False)
        return schedule.get_next(datetime).astimezone(UTC)


def parse_ncrontab(expression: str) -> NcrontabSchedule:
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise ScheduleError(
            f"{expression!r} has {len(fields)} fields; the timer trigger needs six: "
            "{second} {minute} {hour} {day} {month} {day-of-week}"
        )
    for text, (name, lowest, highest, names) in zip(fields, _FIELDS, strict=True):
        for item in text.split(","):
            _check_item(item, name, lowest, highest, names)
    return NcrontabSchedule(" ".join(fields))


def _check_item(item: str, field: str, lowest: int, highest: int, names: tuple[str, ...]) -> None:
    match = _ITEM.match(item)
    if not match:
        raise ScheduleError(f"{item!r} is not a valid {field} item (NCRONTAB has no L, W, # or ? syntax)")
    if match.group("step") is not None and int(match.group("step")) == 0:
        raise ScheduleError(f"{item!r}: the {field} step must be positive")
    bounds = [match.group("low"), match.group("high")]
    values = [_value(bound, field, names) for bound in bounds if bound is not None]
    for value in values:
        if not lowest <= value <= highest:
            raise ScheduleError(f"{item!r}: {field} values are {lowest}-{highest}")
    if len(values) == 2 and values[0] > values[1]:
        raise ScheduleError(f"{item!r}: the {field} range runs backwards")


def _value(token: str, field: str, names: tuple[str, ...]) -> int:
    if token.isdigit():
        return int(token)
    if token.lower() in names:
        # Month names count from 1, day names from 0 (Sunday).
        return names.index(token.lower()) + (1 if names is _MONTHS else 0)
    raise ScheduleError(f"{token!r} is not a {field} value")
