"""Cron expressions as Minion 12 reads them (``Minion::Util::parse_cron`` and ``next_cron_time``).

Pure: no clock, no I/O. Times are epoch seconds evaluated in UTC, never in local time, so Perl
and Python agree on when a shared schedule is due.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from minion_daemon.errors import CronError


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed expression; build it with :func:`parse_cron` and reuse it across calls.

    The ``*_restricted`` flags are false only when the field is literally ``*`` (so ``*/1``
    counts as restricted); they decide whether the day fields combine with OR or with AND.
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


def _numbered(words: str, first: int) -> dict[str, int]:
    return {word: number for number, word in enumerate(words.split(), first)}


_FIELDS: Final = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, _numbered("jan feb mar apr may jun jul aug sep oct nov dec", 1)),
    # 7 is accepted as a second Sunday and folded into 0 once the field is parsed.
    _Field("day-of-week", 0, 7, _numbered("sun mon tue wed thu fri sat", 0)),
)

_NICKNAMES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# ASCII classes: Perl matches \w and \d on the bytes of a command-line argument.
_STEP: Final = re.compile(r"[1-9][0-9]*")
_NUMBER: Final = re.compile(r"[0-9]+")
_SINGLE: Final = re.compile(r"[A-Za-z0-9_]+")
_SPAN: Final = re.compile(r"([A-Za-z0-9_]+)-([A-Za-z0-9_]+)")

_DAY: Final = 86400
_SEARCH_DAYS: Final = 5 * 366
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def parse_cron(expression: str) -> CronSchedule:
    """Parse a five-field expression or one of the lower-case ``@`` nicknames.

    Raises CronError, with Minion's wording, for an unknown nickname, a field count other than
    five, a bad step, a malformed list item, a name foreign to its field, or a value outside the
    field's range (a reversed range included).
    """
    fields = _split_fields(expression)
    minutes, hours, days, months, weekdays = (
        _parse_field(text, field) for text, field in zip(fields, _FIELDS, strict=True)
    )
    return CronSchedule(
        expression=expression,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(day % 7 for day in weekdays),
        days_restricted=fields[2] != "*",
        weekdays_restricted=fields[4] != "*",
    )


def next_cron_time(cron: str | CronSchedule, after: float) -> float:
    """Return the first matching whole minute strictly after ``after`` (epoch seconds, UTC).

    A string is parsed first and its CronError propagates. The search covers 5 x 366 days from
    the next whole minute; when nothing matches in that window (``0 0 31 2 *``) it raises
    CronError. ``after`` must be finite.
    """
    schedule = cron if isinstance(cron, CronSchedule) else parse_cron(cron)
    start = math.floor(after) // 60 * 60 + 60
    found = _search(schedule, start, start + _SEARCH_DAYS * _DAY)
    if found is None:
        raise CronError(f'No matching time found for cron expression "{schedule.expression}"')
    return float(found)


def _split_fields(expression: str) -> list[str]:
    text = expression
    if text.startswith("@"):
        if text not in _NICKNAMES:
            raise CronError(f'Unknown cron nickname "{expression}"')
        text = _NICKNAMES[text]
    # A leading blank yields an empty first field, hence six fields and an error, as in Perl.
    fields = _perl_split(r"\s+", text)
    if len(fields) != len(_FIELDS):
        raise CronError(f'Invalid cron expression "{expression}": expected 5 fields')
    return fields


def _perl_split(separator: str, text: str) -> list[str]:
    """Split like Perl's ``split`` without a limit: trailing empty items are dropped."""
    items = re.split(separator, text)
    while items and not items[-1]:
        items.pop()
    return items


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    # A field of bare commas splits into nothing and so selects nothing; Perl accepts it too,
    # and next_cron_time then finds no match.
    values: set[int] = set()
    for item in _perl_split(",", text):
        values.update(_parse_item(item, field))
    return frozenset(values)


def _parse_item(item: str, field: _Field) -> range:
    span, slash, step = item.partition("/")
    if not slash:
        step = "1"
    if not _STEP.fullmatch(step):
        raise CronError(f'Invalid step "{step}" in {field.name} field')
    low, high = _bounds(span, item, field)
    if low < field.low or high > field.high or low > high:
        raise CronError(
            f'Value out of range in {field.name} field "{item}" ({field.low}-{field.high})'
        )
    # After a single value the step has nothing to skip: "5/10" selects only 5.
    return range(low, high + 1, _number(step))


def _bounds(span: str, item: str, field: _Field) -> tuple[int, int]:
    if span == "*":
        return field.low, field.high
    if match := _SPAN.fullmatch(span):
        return _resolve(match[1], field), _resolve(match[2], field)
    if _SINGLE.fullmatch(span):
        value = _resolve(span, field)
        return value, value
    raise CronError(f'Invalid {field.name} field "{item}"')


def _resolve(token: str, field: _Field) -> int:
    if _NUMBER.fullmatch(token):
        return _number(token)
    value = field.names.get(token.lower())
    if value is None:
        raise CronError(f'Invalid name "{token}" in {field.name} field')
    return value


def _number(digits: str) -> int:
    # int() refuses digit strings past a few thousand characters; ten significant digits are
    # already beyond every field and every useful step, so clamp rather than convert.
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) < 10 else 10**10


def _search(schedule: CronSchedule, start: int, limit: int) -> int | None:
    """Return the first matching minute in ``[start, limit)``, or None."""
    first_day = _EPOCH_ORDINAL + start // _DAY
    last_day = min(_EPOCH_ORDINAL + (limit - 60) // _DAY, date.max.toordinal())
    for day in _matching_days(schedule, first_day, last_day):
        earliest = start % _DAY // 60 if day.toordinal() == first_day else 0
        minute = _first_minute(schedule, earliest)
        if minute is not None:
            moment = (day.toordinal() - _EPOCH_ORDINAL) * _DAY + minute * 60
            return moment if moment < limit else None
    return None


def _matching_days(schedule: CronSchedule, first: int, last: int) -> Iterator[date]:
    """Yield, in order, the days in ordinals ``[first, last]`` whose month and day match."""
    ordinal = first
    while ordinal <= last:
        day = date.fromordinal(ordinal)
        if day.month not in schedule.months:
            # Jump to the 1st of the next month instead of walking through this one.
            ordinal += calendar.monthrange(day.year, day.month)[1] - day.day + 1
            continue
        if _day_matches(schedule, day):
            yield day
        ordinal += 1


def _day_matches(schedule: CronSchedule, day: date) -> bool:
    by_date = not schedule.days_restricted or day.day in schedule.days
    by_weekday = not schedule.weekdays_restricted or day.isoweekday() % 7 in schedule.weekdays
    # Vixie cron: when both day fields are restricted, either one is enough.
    if schedule.days_restricted and schedule.weekdays_restricted:
        return by_date or by_weekday
    return by_date and by_weekday


def _first_minute(schedule: CronSchedule, earliest: int) -> int | None:
    """Return the first matching minute of a day (0-1439) at or after ``earliest``, or None."""
    return next(
        (
            hour * 60 + minute
            for hour in sorted(schedule.hours)
            for minute in sorted(schedule.minutes)
            if hour * 60 + minute >= earliest
        ),
        None,
    )
