"""The pure argument checks of ``minion_daemon.options``: no database, no I/O.

Each check either returns the value in the form the backend binds (ints, floats, tuples, frozen
records with Minion's defaults) or raises ``TypeError`` (wrong type) / ``ValueError`` (wrong
value, unknown key) with a message naming where the value came from.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minion_daemon.options import (
    BIGINT_MAX,
    INT_MAX,
    MAX_SECONDS,
    DequeueOptions,
    JobOptions,
    RetryOptions,
    check_args,
    check_bool,
    check_id,
    check_ids,
    check_int,
    check_json,
    check_keys,
    check_notes,
    check_seconds,
    check_states,
    check_text,
    parse_dequeue,
    parse_enqueue,
    parse_filter,
    parse_retry,
    parse_schedule_options,
)

# Deterministic and database-free: no example database on disk, no wall-clock deadline on a
# loaded machine.
PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

WHERE = "op: option 'x'"


# check_int


@pytest.mark.parametrize(
    ("value", "low", "high"), [(0, 0, 10), (10, 0, 10), (-5, -5, 5), (7, 7, 7)]
)
def test_check_int_accepts_the_inclusive_bounds(value: int, low: int, high: int) -> None:
    assert check_int(WHERE, value, low, high) == value


@pytest.mark.parametrize(("value", "low", "high"), [(-1, 0, 10), (11, 0, 10), (2**31, 0, INT_MAX)])
def test_check_int_refuses_values_out_of_range(value: int, low: int, high: int) -> None:
    with pytest.raises(ValueError, match=rf"^op: option 'x' must be between {low} and {high}"):
        check_int(WHERE, value, low, high)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, [1], Decimal(1)])
def test_check_int_refuses_everything_but_int(value: object) -> None:
    with pytest.raises(TypeError, match=r"^op: option 'x' must be an integer"):
        check_int(WHERE, value, -10, 10)


@PROPERTY
@given(st.integers(), st.integers(-(2**40), 2**40), st.integers(0, 2**40))
def test_check_int_accepts_exactly_the_range(value: int, low: int, width: int) -> None:
    high = low + width
    if low <= value <= high:
        assert check_int(WHERE, value, low, high) == value
    else:
        with pytest.raises(ValueError, match="option 'x'"):
            check_int(WHERE, value, low, high)


# check_seconds


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), (5, 5.0), (0.25, 0.25), (MAX_SECONDS, MAX_SECONDS)]
)
def test_check_seconds_returns_a_float(value: float, expected: float) -> None:
    result = check_seconds(WHERE, value)
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    "value",
    [-1, -0.001, MAX_SECONDS + 1, math.nan, math.inf, -math.inf,
     pytest.param(10**400, id="10**400"), pytest.param(-(10**400), id="-10**400")],
)  # fmt: skip
def test_check_seconds_refuses_negative_huge_and_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="option 'x'"):
        check_seconds(WHERE, value)


@pytest.mark.parametrize("value", [True, "5", None, [5], Decimal(5), 5j])
def test_check_seconds_refuses_non_numbers(value: object) -> None:
    with pytest.raises(TypeError, match="option 'x'"):
        check_seconds(WHERE, value)


# check_bool


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), (1, True), (0, False)]
)
def test_check_bool_accepts_booleans_and_perls_zero_and_one(value: object, expected: bool) -> None:
    result = check_bool(WHERE, value)
    assert result is expected


@pytest.mark.parametrize("value", [2, -1, 1.0, "true", "1", "", None, [True]])
def test_check_bool_refuses_anything_else(value: object) -> None:
    with pytest.raises(TypeError, match=r"option 'x' must be a boolean"):
        check_bool(WHERE, value)


# check_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ("5", 5), ("007", 7), ("-3", -3), (BIGINT_MAX, BIGINT_MAX),
     (str(BIGINT_MAX), BIGINT_MAX), (-BIGINT_MAX - 1, -BIGINT_MAX - 1)],
)  # fmt: skip
def test_check_id_accepts_ints_and_strings_of_digits(value: object, expected: int) -> None:
    result = check_id(WHERE, value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [1.0, True, None, "", "-", "abc", "5.0", " 5", "5 ", "0x10", "1e3", "1_000", "+5",
     "\u0663", "\uff15", b"5", [5]],
)  # fmt: skip
def test_check_id_refuses_other_types_and_strings(value: object) -> None:
    with pytest.raises(TypeError, match="option 'x'"):
        check_id(WHERE, value)


@pytest.mark.parametrize("value", [BIGINT_MAX + 1, -BIGINT_MAX - 2, 10**30])
def test_check_id_refuses_ids_outside_bigint(value: int) -> None:
    with pytest.raises(ValueError, match="option 'x'"):
        check_id(WHERE, value)


@pytest.mark.parametrize("value", [str(BIGINT_MAX + 1), str(-BIGINT_MAX - 2), "9" * 30, "9" * 5000])
def test_check_id_refuses_digit_strings_outside_bigint(value: str) -> None:
    with pytest.raises((TypeError, ValueError), match="option 'x'"):
        check_id(WHERE, value)


@pytest.mark.parametrize("value", ["--5", "-5-", "5-"])
def test_check_id_names_the_option_for_malformed_minus_signs(value: str) -> None:
    with pytest.raises((TypeError, ValueError), match="option 'x'"):
        check_id(WHERE, value)


@PROPERTY
@given(st.integers(-BIGINT_MAX - 1, BIGINT_MAX))
def test_check_id_reads_back_every_bigint_written_as_text(value: int) -> None:
    assert check_id(WHERE, str(value)) == value
    assert check_id(WHERE, value) == value


def test_check_ids_checks_each_item_and_names_its_index() -> None:
    assert check_ids(WHERE, (3, "4")) == [3, 4]
    assert check_ids(WHERE, []) == []
    with pytest.raises(TypeError, match=r"option 'x'\[1\]"):
        check_ids(WHERE, [1, "x"])
    for not_a_list in ("12", b"12", 12, None, {1: 1}.keys()):
        with pytest.raises(TypeError, match="option 'x'"):
            check_ids(WHERE, not_a_list)


# check_text


@pytest.mark.parametrize("value", ["a", " ", "'; DROP TABLE x; --", "\U0001f418", "\x01\x7f"])
def test_check_text_returns_strings_unchanged(value: str) -> None:
    assert check_text(WHERE, value) is value


def test_check_text_refuses_empty_unless_allowed() -> None:
    with pytest.raises(ValueError, match="option 'x' must not be empty"):
        check_text(WHERE, "")
    assert check_text(WHERE, "", empty=True) == ""


@pytest.mark.parametrize("value", ["\x00", "a\x00", "\x00b", "a\x00b"])
@pytest.mark.parametrize("empty", [False, True])
def test_check_text_refuses_nul(value: str, empty: bool) -> None:
    with pytest.raises(ValueError, match="option 'x' contains a NUL"):
        check_text(WHERE, value, empty=empty)


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\udc80 surrogate-escaped byte"])
def test_check_text_refuses_strings_utf8_cannot_encode(value: str) -> None:
    with pytest.raises(ValueError, match="option 'x'") as raised:
        check_text(WHERE, value, empty=True)
    assert not isinstance(raised.value, UnicodeError)


@pytest.mark.parametrize("value", [None, 5, b"bytes", ["a"]])
def test_check_text_refuses_non_strings(value: object) -> None:
    with pytest.raises(TypeError, match="option 'x' must be a string"):
        check_text(WHERE, value)


# check_json, check_args, check_notes


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(10**30), 1.5, -0.0, "", "text", [], {}, (1, "two"), [None, [{}]],
     {"": {"nested": [1, 2.5, None, False]}}, {"\\u0000": "\\x00"}],
)  # fmt: skip
def test_check_json_accepts_json_values(value: object) -> None:
    assert check_json(WHERE, value) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (math.nan, ValueError), (math.inf, ValueError), ([1, [-math.inf]], ValueError),
        ("a\x00", ValueError), ({"k": "\x00"}, ValueError), ({"\x00": 1}, ValueError),
        ({1: "one"}, TypeError), ({None: 1}, TypeError), ({(1, 2): 1}, TypeError),
        ({True: 1}, TypeError), ({1.5: 1}, TypeError), ({1}, TypeError), (frozenset(), TypeError),
        (b"x", TypeError), (bytearray(b"x"), TypeError), (Decimal("1.5"), TypeError),
        (1j, TypeError), (object(), TypeError), ([[{"deep": {2}}]], TypeError),
    ],
)  # fmt: skip
def test_check_json_refuses_what_jsonb_cannot_hold(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"option 'x'"):
        check_json(WHERE, value)


def _nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([{"k": []}])
        inner = inner[0][0]["k"]
    return outer


def test_check_json_accepts_moderate_nesting() -> None:
    assert check_json(WHERE, _nested(50)) is None


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_check_json_refuses_nesting_too_deep_to_encode_without_recursion_error(
    depth: int,
) -> None:
    with pytest.raises(ValueError, match="option 'x'"):
        check_json(WHERE, _nested(depth))


def test_check_args_returns_a_new_list() -> None:
    assert check_args(WHERE, None) == []
    assert check_args(WHERE, (1, "a")) == [1, "a"]
    original = [1, {"a": 2}]
    copied = check_args(WHERE, original)
    assert copied == original
    assert copied is not original


@pytest.mark.parametrize("value", ["abc", {"a": 1}, {1, 2}, 7, (n for n in range(2))])
def test_check_args_refuses_non_lists(value: object) -> None:
    with pytest.raises(TypeError, match="option 'x' must be a list"):
        check_args(WHERE, value)


def test_check_notes_returns_a_new_dict_and_refuses_non_mappings() -> None:
    original = {"a": [1], "b": None}
    copied = check_notes(WHERE, original)
    assert copied == original
    assert copied is not original
    for not_a_mapping in (None, [], [("a", 1)], "a=1"):
        with pytest.raises(TypeError, match="option 'x' must be a mapping"):
            check_notes(WHERE, not_a_mapping)


# Property tests for check_json

# Any character UTF-8 can encode (so no lone surrogates), except NUL.
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(_TEXT, inner, max_size=4)
    ),
    max_leaves=25,
)
_WITH_NUL = st.builds(lambda head, tail: f"{head}\x00{tail}", _TEXT, _TEXT)
_WITH_SURROGATE = st.builds(
    lambda head, lone, tail: f"{head}{lone}{tail}",
    _TEXT,
    st.characters(categories=["Cs"]),
    _TEXT,
)
_NON_STR_KEYS = (
    st.integers()
    | st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.tuples(st.integers())
    | st.binary(max_size=3)
)

#: Values JSONB cannot hold, each with the error it must raise.
_BAD_LEAVES = st.one_of(
    st.tuples(st.sampled_from([math.nan, math.inf, -math.inf]), st.just(ValueError)),
    st.tuples(_WITH_NUL, st.just(ValueError)),
    st.tuples(_WITH_SURROGATE, st.just(ValueError)),
    st.tuples(st.dictionaries(_WITH_SURROGATE, _JSON, min_size=1, max_size=2), st.just(ValueError)),
    st.tuples(st.dictionaries(_WITH_NUL, _JSON, min_size=1, max_size=2), st.just(ValueError)),
    st.tuples(st.dictionaries(_NON_STR_KEYS, _JSON, min_size=1, max_size=2), st.just(TypeError)),
    st.tuples(st.sets(st.integers(), max_size=3), st.just(TypeError)),
    st.tuples(st.frozensets(_TEXT, max_size=3), st.just(TypeError)),
    st.tuples(st.binary(max_size=5), st.just(TypeError)),
    st.tuples(st.binary(max_size=5).map(bytearray), st.just(TypeError)),
    st.tuples(st.decimals(allow_nan=False), st.just(TypeError)),
    st.tuples(st.complex_numbers(), st.just(TypeError)),
    st.tuples(st.builds(object), st.just(TypeError)),
)


@st.composite
def _poisoned(draw: st.DrawFn) -> tuple[object, type[Exception]]:
    """A JSON structure with exactly one bad value buried somewhere inside valid siblings."""
    value, error = draw(_BAD_LEAVES)
    for _ in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from(["list", "tuple", "dict"]))
        if shape == "dict":
            siblings = draw(st.dictionaries(_TEXT, _JSON, max_size=3))
            value = {**siblings, draw(_TEXT): value}
        else:
            siblings_list = draw(st.lists(_JSON, max_size=3))
            position = draw(st.integers(0, len(siblings_list)))
            items = [*siblings_list[:position], value, *siblings_list[position:]]
            value = items if shape == "list" else tuple(items)
    return value, error


@PROPERTY
@given(_JSON)
def test_check_json_accepts_every_json_value(value: Any) -> None:
    assert check_json(WHERE, value) is None
    # What it accepts, strict JSON can encode (no NaN, no foreign types, no non-string keys).
    json.dumps(value, allow_nan=False)


@PROPERTY
@given(_poisoned())
def test_check_json_refuses_every_value_jsonb_cannot_hold(
    case: tuple[Any, type[Exception]],
) -> None:
    value, error = case
    with pytest.raises(error, match=r"option 'x'"):
        check_json(WHERE, value)


# check_keys


def test_check_keys_accepts_none_and_known_keys() -> None:
    allowed = frozenset(("a", "b"))
    assert check_keys("op", None, allowed) == {}
    options = {"a": 1}
    assert check_keys("op", options, allowed) is options


def test_check_keys_names_every_unknown_key_and_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"^op: unknown option 'c', 'd'; expected one of a, b$"):
        check_keys("op", {"a": 1, "d": 2, "c": 3}, frozenset(("a", "b")))


@pytest.mark.parametrize("options", [[("a", 1)], "a", 1, {"a"}])
def test_check_keys_refuses_non_mappings(options: object) -> None:
    with pytest.raises(TypeError, match=r"^op: options must be a mapping"):
        check_keys("op", options, frozenset(("a",)))


# parse_enqueue and parse_schedule_options


def test_parse_enqueue_fills_in_minions_defaults() -> None:
    opts = parse_enqueue("enqueue", "task", None, None)
    assert opts == JobOptions()
    assert (opts.attempts, opts.delay, opts.expire, opts.lax) == (1, 0.0, None, False)
    assert (opts.notes, opts.parents, opts.priority, opts.queue) == ({}, (), 0, "default")


def test_parse_enqueue_converts_every_option() -> None:
    opts = parse_enqueue(
        "enqueue",
        "task",
        [1],
        {"attempts": 3, "delay": 5, "expire": 60, "lax": 1, "notes": {"a": 1},
         "parents": ["4", 5], "priority": -2, "queue": "q"},
    )  # fmt: skip
    assert opts == JobOptions(
        attempts=3, delay=5.0, expire=60, lax=True, notes={"a": 1}, parents=(4, 5),
        priority=-2, queue="q",
    )  # fmt: skip
    assert type(opts.delay) is float
    assert opts.lax is True


def test_parse_enqueue_treats_none_as_absent() -> None:
    keys = ("attempts", "delay", "expire", "lax", "notes", "parents", "priority", "queue")
    assert parse_enqueue("enqueue", "task", [], dict.fromkeys(keys)) == JobOptions()


@pytest.mark.parametrize(
    ("task", "args", "options", "error", "match"),
    [
        ("", None, None, ValueError, "enqueue: task"),
        (None, None, None, TypeError, "enqueue: task"),
        ("t\x00", None, None, ValueError, "enqueue: task.*NUL"),
        ("t", "args", None, TypeError, "enqueue: args"),
        ("t", [math.nan], None, ValueError, "enqueue: args"),
        ("t", None, {"attempts": 0}, ValueError, "enqueue: option 'attempts'"),
        ("t", None, {"expire": 0}, ValueError, "enqueue: option 'expire'"),
        ("t", None, {"delay": -1}, ValueError, "enqueue: option 'delay'"),
        ("t", None, {"priority": 2**31}, ValueError, "enqueue: option 'priority'"),
        ("t", None, {"parents": [1.5]}, TypeError, "enqueue: option 'parents'"),
        ("t", None, {"notes": []}, TypeError, "enqueue: option 'notes'"),
        ("t", None, {"lax": "no"}, TypeError, "enqueue: option 'lax'"),
        ("t", None, {"queue": ""}, ValueError, "enqueue: option 'queue'"),
        ("t", None, {"queues": ["a"]}, ValueError, "enqueue: unknown option 'queues'"),
        ("t", None, {"unique": ""}, ValueError, "enqueue: option 'unique' must not be empty"),
        ("t", None, {"unique": 7}, TypeError, "enqueue: option 'unique' must be a string"),
        ("t", None, {"unique": "é" * 501}, ValueError, "'unique' is longer than 1000 bytes"),
        ("t", None, {"unique": "k", "unique_for": -1}, ValueError, "option 'unique_for'"),
        ("t", None, {"unique_for": 60}, ValueError, "'unique_for' needs option 'unique'"),
    ],
)
def test_parse_enqueue_refuses_bad_arguments(
    task: object, args: object, options: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        parse_enqueue("enqueue", task, args, options)


def test_parse_enqueue_takes_a_unique_key_and_its_window() -> None:
    opts = parse_enqueue("enqueue", "task", [], {"unique": "report:1", "unique_for": 60})
    assert (opts.unique, opts.unique_for) == ("report:1", 60.0)
    assert parse_enqueue("enqueue", "task", [], {"unique": "k"}).unique_for is None
    assert parse_enqueue("enqueue", "task", [], {"unique": "é" * 500}).unique == "é" * 500
    none = parse_enqueue("enqueue", "task", [], {"unique": None, "unique_for": None})
    assert (none.unique, none.unique_for) == (None, None)


def test_parse_schedule_options_takes_the_job_options_without_delay_and_parents() -> None:
    opts = parse_schedule_options("schedule", {"attempts": 2, "expire": 5, "queue": "q"})
    assert (opts.attempts, opts.expire, opts.queue, opts.delay, opts.parents) == (
        2,
        5,
        "q",
        0.0,
        (),
    )
    for key, value in (("delay", 1), ("parents", [1]), ("unique", "k")):
        with pytest.raises(ValueError, match=f"schedule: unknown option '{key}'"):
            parse_schedule_options("schedule", {key: value})


# parse_retry


def test_parse_retry_keeps_everything_absent_by_default() -> None:
    assert parse_retry("retry_job", None) == RetryOptions()
    assert parse_retry("retry_job", {}) == RetryOptions(
        attempts=None, delay=0.0, expire=None, lax=None, parents=None, priority=None, queue=None
    )


def test_parse_retry_tells_a_false_lax_from_an_absent_one() -> None:
    assert parse_retry("retry_job", {"lax": False}).lax is False
    assert parse_retry("retry_job", {"lax": 0}).lax is False
    assert parse_retry("retry_job", {"lax": None}).lax is None


def test_parse_retry_converts_its_options() -> None:
    opts = parse_retry(
        "retry_job",
        {"attempts": 2, "delay": 1, "expire": 9, "parents": [], "priority": 3, "queue": "q"},
    )
    assert opts == RetryOptions(attempts=2, delay=1.0, expire=9, parents=(), priority=3, queue="q")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"notes": {}}, ValueError, "unknown option 'notes'"),
        ({"attempts": 0}, ValueError, "option 'attempts'"),
        ({"delay": math.nan}, ValueError, "option 'delay'"),
        ({"parents": "1"}, TypeError, "option 'parents'"),
        ("attempts", TypeError, "options must be a mapping"),
    ],
)
def test_parse_retry_refuses_bad_options(options: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=rf"^retry_job: {match}"):
        parse_retry("retry_job", options)


# parse_dequeue


def test_parse_dequeue_defaults_to_the_default_queue_and_any_task() -> None:
    seconds, opts = parse_dequeue("dequeue", 0, None)
    assert seconds == 0.0
    assert type(seconds) is float
    assert opts == DequeueOptions(id=None, min_priority=None, queues=("default",), tasks=None)


def test_parse_dequeue_converts_its_options() -> None:
    seconds, opts = parse_dequeue(
        "dequeue", 2.5, {"id": "7", "min_priority": -3, "queues": ["a", "b"], "tasks": ("t",)}
    )
    assert seconds == 2.5
    assert opts == DequeueOptions(id=7, min_priority=-3, queues=("a", "b"), tasks=("t",))


def test_parse_dequeue_keeps_an_empty_task_list_apart_from_no_list() -> None:
    assert parse_dequeue("dequeue", 0, {"tasks": []})[1].tasks == ()
    assert parse_dequeue("dequeue", 0, {"tasks": None})[1].tasks is None


@pytest.mark.parametrize(
    ("wait", "options", "error", "match"),
    [
        (-1, None, ValueError, "wait"),
        ("1", None, TypeError, "wait"),
        (math.inf, None, ValueError, "wait"),
        (0, {"queues": "default"}, TypeError, "option 'queues'"),
        (0, {"queues": ["a\x00"]}, ValueError, r"option 'queues'\[0\].*NUL"),
        (0, {"tasks": [1]}, TypeError, "option 'tasks'"),
        (0, {"id": 1.5}, TypeError, "option 'id'"),
        (0, {"min_priority": True}, TypeError, "option 'min_priority'"),
        (0, {"queue": "a"}, ValueError, "unknown option 'queue'"),
    ],
)
def test_parse_dequeue_refuses_bad_arguments(
    wait: object, options: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=rf"^dequeue: {match}"):
        parse_dequeue("dequeue", wait, options)


# parse_filter

_JOB_FILTERS = frozenset(("before", "ids", "notes", "queues", "states", "tasks"))


def test_parse_filter_returns_every_allowed_key_with_none_for_no_filter() -> None:
    assert parse_filter("list_jobs", None, _JOB_FILTERS) == dict.fromkeys(_JOB_FILTERS)


def test_parse_filter_converts_the_given_filters() -> None:
    parsed = parse_filter(
        "list_jobs",
        {"before": "10", "ids": (1, "2"), "notes": ["k"], "queues": ("q",),
         "states": ["failed", "active"], "tasks": []},
        _JOB_FILTERS,
    )  # fmt: skip
    assert parsed == {
        "before": 10, "ids": [1, 2], "notes": ["k"], "queues": ["q"],
        "states": ["failed", "active"], "tasks": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"states": ["inactive", "done"]}, ValueError, r"option 'states': unknown state 'done'"),
        ({"states": ["Active"]}, ValueError, "option 'states'"),
        ({"states": "active"}, TypeError, "option 'states'"),
        ({"ids": "1"}, TypeError, "option 'ids'"),
        ({"ids": [None]}, TypeError, r"option 'ids'\[0\]"),
        ({"before": 1.5}, TypeError, "option 'before'"),
        ({"notes": [1]}, TypeError, "option 'notes'"),
        ({"queues": ["\x00"]}, ValueError, "option 'queues'.*NUL"),
        ({"names": ["x"]}, ValueError, "unknown option 'names'"),
        ({"state": ["active"]}, ValueError, "unknown option 'state'"),
    ],
)
def test_parse_filter_refuses_bad_filters(options: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=rf"^list_jobs: {match}"):
        parse_filter("list_jobs", options, _JOB_FILTERS)


def test_check_states_accepts_exactly_minions_four_states() -> None:
    states = ["inactive", "active", "failed", "finished"]
    assert check_states(WHERE, states) == states
    with pytest.raises(ValueError, match="unknown state 'running'"):
        check_states(WHERE, ["running"])
