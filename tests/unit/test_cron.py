"""Cron parsing and next-run computation, SPEC §2.5 and checklist items 131-135 (util.t)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from minion_daemon.cron import CronSchedule, next_cron_time, parse_cron
from minion_daemon.errors import CronError, MinionError

# 2026-05-12 12:00:00 UTC, a Tuesday: the base time of Minion's own tests.
BASE = datetime(2026, 5, 12, 12, tzinfo=UTC).timestamp()


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def _fields(schedule: CronSchedule) -> CronSchedule:
    """The schedule without its source text, to compare what two expressions mean."""
    return dataclasses.replace(schedule, expression="")


# 131: basic forms


def test_131_star_expands_every_field_to_its_full_range() -> None:
    schedule = parse_cron("* * * * *")
    assert schedule.minutes == frozenset(range(60))
    assert schedule.hours == frozenset(range(24))
    assert schedule.days == frozenset(range(1, 32))
    assert schedule.months == frozenset(range(1, 13))
    assert schedule.weekdays == frozenset(range(7))
    assert schedule.expression == "* * * * *"


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("5,15,25 * * * *", {5, 15, 25}),
        ("*/15 * * * *", {0, 15, 30, 45}),
        ("0-30/10 * * * *", {0, 10, 20, 30}),
        ("5/10 * * * *", {5}),
        ("1-3,2-4,50-59/5 * * * *", {1, 2, 3, 4, 50, 55}),
        ("1,2, * * * *", {1, 2}),  # Perl's split drops a trailing empty item
        ("007 * * * *", {7}),
    ],
)
def test_131_lists_ranges_and_steps(expression: str, minutes: set[int]) -> None:
    assert parse_cron(expression).minutes == minutes


def test_131_range_in_the_hour_field() -> None:
    assert parse_cron("0 9-17 * * *").hours == frozenset(range(9, 18))


def test_131_extra_whitespace_between_and_after_fields_is_ignored() -> None:
    assert _fields(parse_cron("0\t9   * *  1-5 \n")) == _fields(parse_cron("0 9 * * 1-5"))


@pytest.mark.parametrize(
    ("expression", "days_restricted", "weekdays_restricted"),
    [
        ("* * * * *", False, False),
        ("5 * * * *", False, False),
        ("* * */1 * *", True, False),
        ("* * 1-31 * *", True, False),
        ("* * * * */2", False, True),
        ("* * * * 0-7", False, True),
    ],
)
def test_131_restricted_means_not_literally_star(
    expression: str, days_restricted: bool, weekdays_restricted: bool
) -> None:
    schedule = parse_cron(expression)
    assert schedule.days_restricted is days_restricted
    assert schedule.weekdays_restricted is weekdays_restricted


# 132: nicknames and names


@pytest.mark.parametrize(
    ("nickname", "expression"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_132_nicknames_expand(nickname: str, expression: str) -> None:
    schedule = parse_cron(nickname)
    assert schedule.expression == nickname
    assert _fields(schedule) == _fields(parse_cron(expression))


@pytest.mark.parametrize("nickname", ["@bogus", "@Daily", "@HOURLY", "@daily ", "@"])
def test_132_unknown_nicknames_are_rejected(nickname: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(nickname)
    assert str(caught.value) == f'Unknown cron nickname "{nickname}"'


def test_132_names_resolve_case_insensitively() -> None:
    assert parse_cron("0 0 * JAN *").months == {1}
    assert parse_cron("0 0 * jan-mar *").months == {1, 2, 3}
    assert parse_cron("0 0 * Oct-DEC/2 *").months == {10, 12}
    assert parse_cron("0 0 * * MON-FRI").weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("0 0 * * sat,sun").weekdays == {0, 6}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * BOGUS *", 'Invalid name "BOGUS" in month field'),
        ("* MON * * *", 'Invalid name "MON" in hour field'),
        ("JAN * * * *", 'Invalid name "JAN" in minute field'),
        ("* * mon * *", 'Invalid name "mon" in day-of-month field'),
        ("* * * MON *", 'Invalid name "MON" in month field'),
        ("* * * * JAN", 'Invalid name "JAN" in day-of-week field'),
        ("* * * * MON-xyz", 'Invalid name "xyz" in day-of-week field'),
        ("5a * * * *", 'Invalid name "5a" in minute field'),
    ],
)
def test_132_names_outside_their_field_are_rejected(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert str(caught.value) == message


# 133: day-of-week 7


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [("7", {0}), ("5-7", {0, 5, 6}), ("0,7", {0}), ("1-7/2", {0, 1, 3, 5}), ("*", set(range(7)))],
)
def test_133_day_of_week_7_is_sunday(field: str, weekdays: set[int]) -> None:
    assert parse_cron(f"0 0 * * {field}").weekdays == weekdays


# 134: errors


@pytest.mark.parametrize("expression", ["* * * *", "* * * * * *", "", "   ", " * * * * *", "*****"])
def test_134_exactly_five_fields_are_required(expression: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert str(caught.value) == f'Invalid cron expression "{expression}": expected 5 fields'


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("60 * * * *", 'Value out of range in minute field "60" (0-59)'),
        ("* 24 * * *", 'Value out of range in hour field "24" (0-23)'),
        ("* * 0 * *", 'Value out of range in day-of-month field "0" (1-31)'),
        ("* * 32 * *", 'Value out of range in day-of-month field "32" (1-31)'),
        ("* * * 13 *", 'Value out of range in month field "13" (1-12)'),
        ("* * * 0 *", 'Value out of range in month field "0" (1-12)'),
        ("* * * * 8", 'Value out of range in day-of-week field "8" (0-7)'),
        ("5-2 * * * *", 'Value out of range in minute field "5-2" (0-59)'),
        ("1,50-70/5 * * * *", 'Value out of range in minute field "50-70/5" (0-59)'),
        ("* * * DEC-JAN *", 'Value out of range in month field "DEC-JAN" (1-12)'),
    ],
)
def test_134_values_out_of_range_are_rejected(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert str(caught.value) == message


def test_134_huge_numbers_are_compared_not_converted() -> None:
    # Python's int() refuses digit strings this long; Perl just sees a large number.
    digits = "9" * 5000
    with pytest.raises(CronError) as caught:
        parse_cron(f"{digits} * * * *")
    assert str(caught.value) == f'Value out of range in minute field "{digits}" (0-59)'
    assert parse_cron(f"*/{digits} * * * *").minutes == {0}
    assert parse_cron(f"{'0' * 5000}7 * * * *").minutes == {7}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("?? * * * *", 'Invalid minute field "??"'),
        ("* -1 * * *", 'Invalid hour field "-1"'),
        ("* * 1-2-3 * *", 'Invalid day-of-month field "1-2-3"'),
        ("* * * 1,,2 *", 'Invalid month field ""'),
        ("* * * * ,1", 'Invalid day-of-week field ""'),
        ("/5 * * * *", 'Invalid minute field "/5"'),
        ("** * * * *", 'Invalid minute field "**"'),
    ],
)
def test_134_malformed_items_are_rejected(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*/0 * * * *", 'Invalid step "0" in minute field'),
        ("* */05 * * *", 'Invalid step "05" in hour field'),
        ("* * 1-5/ * *", 'Invalid step "" in day-of-month field'),
        ("* * * */x *", 'Invalid step "x" in month field'),
        ("* * * * */2/3", 'Invalid step "2/3" in day-of-week field'),
        ("??/0 * * * *", 'Invalid step "0" in minute field'),  # the step is checked first
    ],
)
def test_134_invalid_steps_are_rejected(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert str(caught.value) == message


def test_134_cron_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="expected 5 fields"):
        parse_cron("invalid")
    assert issubclass(CronError, MinionError)


# 135: next_cron_time


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("* * * * *", BASE + 60),
        ("*/5 * * * *", _at(2026, 5, 12, 12, 5)),
        ("0 13 * * *", _at(2026, 5, 12, 13)),
        ("0 9 * * *", _at(2026, 5, 13, 9)),
        ("0 9 * * 1-5", _at(2026, 5, 13, 9)),
        ("0 0 1 * 0", _at(2026, 5, 17)),  # OR rule: Sunday the 17th comes before June 1st
        ("0 0 1 1 *", _at(2027, 1, 1)),
        ("@hourly", _at(2026, 5, 12, 13)),
        ("@daily", _at(2026, 5, 13)),
        ("@yearly", _at(2027, 1, 1)),
        ("0 9 * * MON-FRI", _at(2026, 5, 13, 9)),
        ("0 0 1 JAN *", _at(2027, 1, 1)),
        ("0 0 * * 7", _at(2026, 5, 17)),
        ("@weekly", _at(2026, 5, 17)),
        ("@monthly", _at(2026, 6, 1)),
    ],
)
def test_135_next_time_from_the_base(expression: str, expected: float) -> None:
    result = next_cron_time(expression, BASE)
    assert result == expected
    assert isinstance(result, float)


def test_135_rounds_up_to_the_next_whole_minute() -> None:
    assert next_cron_time("* * * * *", BASE + 30) == BASE + 60
    assert next_cron_time("* * * * *", BASE + 59.999) == BASE + 60
    assert next_cron_time("* * * * *", BASE + 60) == BASE + 120


def test_135_a_matching_start_is_skipped() -> None:
    assert next_cron_time("0 12 * * *", BASE) == _at(2026, 5, 13, 12)


def test_135_next_february_29_is_over_a_year_away() -> None:
    assert next_cron_time("0 0 29 2 *", _at(2027, 1, 1)) == _at(2028, 2, 29)


def test_135_a_parsed_schedule_can_be_reused() -> None:
    schedule = parse_cron("*/5 * * * *")
    assert next_cron_time(schedule, BASE) == BASE + 300
    assert next_cron_time(schedule, BASE + 300) == BASE + 600


def test_135_perl_documentation_example() -> None:
    assert next_cron_time("*/5 * * * *", 1747051200) == 1747051500


def test_135_both_day_fields_restricted_match_either() -> None:
    # */2 is restricted although it is star-based, so Mondays match as well as odd dates.
    assert next_cron_time("0 0 */2 * 1", _at(2026, 5, 17, 1)) == _at(2026, 5, 18)
    assert next_cron_time("0 0 */2 * 1", _at(2026, 5, 18, 1)) == _at(2026, 5, 19)


def test_135_one_restricted_day_field_alone_decides() -> None:
    assert next_cron_time("0 0 13 * *", BASE) == _at(2026, 5, 13)
    assert next_cron_time("0 0 * * 3", BASE) == _at(2026, 5, 13)
    assert next_cron_time("0 0 12 * *", BASE) == _at(2026, 6, 12)


def test_135_month_skipping_wraps_into_the_next_year() -> None:
    assert next_cron_time("30 6 * FEB,APR *", _at(2026, 12, 31, 23, 59)) == _at(2027, 2, 1, 6, 30)
    assert next_cron_time("59 23 31 DEC *", _at(2026, 12, 31, 23, 58)) == _at(2026, 12, 31, 23, 59)


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_135_no_match_within_five_years_raises(expression: str) -> None:
    with pytest.raises(CronError) as caught:
        next_cron_time(expression, BASE)
    assert str(caught.value) == f'No matching time found for cron expression "{expression}"'


def test_135_a_field_of_bare_commas_never_matches() -> None:
    assert parse_cron(", * * * *").minutes == frozenset()
    with pytest.raises(CronError, match="No matching time found"):
        next_cron_time(", * * * *", BASE)


def test_135_search_window_is_five_times_366_days_exclusive() -> None:
    # After 2096-02-29 the next February 29 is in 2104, more than five years away.
    leap_day = _at(2104, 2, 29)
    window = timedelta(days=5 * 366).total_seconds()
    assert next_cron_time("0 0 29 2 *", leap_day - window) == leap_day
    with pytest.raises(CronError):
        next_cron_time("0 0 29 2 *", leap_day - window - 60)


def test_135_parse_errors_propagate() -> None:
    with pytest.raises(CronError, match='Invalid step "0" in minute field'):
        next_cron_time("*/0 * * * *", BASE)


def _scan(schedule: CronSchedule, after: float) -> float:
    """Reference: try every minute, the way the cron definition reads."""
    moment = datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0)
    while True:
        moment += timedelta(minutes=1)
        by_date = moment.day in schedule.days
        by_weekday = moment.isoweekday() % 7 in schedule.weekdays
        both = schedule.days_restricted and schedule.weekdays_restricted
        if (
            moment.minute in schedule.minutes
            and moment.hour in schedule.hours
            and moment.month in schedule.months
            and ((by_date or by_weekday) if both else (by_date and by_weekday))
        ):
            return moment.timestamp()


@pytest.mark.parametrize(
    "expression",
    [
        "*/7 */5 * * *",
        "45 23 * * *",
        "0 0 1,15 * 5",
        "15 4 * * 6-7",
        "0-5 10 * * sun",
        "0 3 31 * *",
    ],
)
@pytest.mark.parametrize(
    "after", [BASE, BASE + 86399.5, _at(2026, 12, 31, 23, 59), _at(2028, 2, 28)]
)
def test_135_agrees_with_a_minute_by_minute_scan(expression: str, after: float) -> None:
    schedule = parse_cron(expression)
    assert next_cron_time(schedule, after) == _scan(schedule, after)
