"""Argument checking for every public operation, before anything touches the database.

Each ``parse_*`` function takes the options mapping an operation accepts (Perl Minion's option
hashes, with the same keys) and returns a frozen record, or raises ``TypeError`` (wrong type) /
``ValueError`` (wrong value, unknown key) whose message names the operation and the option.
PostgreSQL limits are checked here too (INT ranges, the NUL character text and JSONB refuse), so
that a user mistake never surfaces as a driver error.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from minion_daemon.model import JOB_STATES

INT_MAX: Final = 2**31 - 1
BIGINT_MAX: Final = 2**63 - 1
#: Deepest JSON nesting accepted; the JSON encoder recurses, and Python's stack ends near 1000.
MAX_JSON_DEPTH: Final = 500
#: Longest ``unique`` key accepted, in UTF-8 bytes: keys are a B-tree's entries, whose limit
#: (2704 bytes, less after compression fails) a key must never meet as a driver error.
MAX_UNIQUE_KEY_BYTES: Final = 1000
#: Longest delay accepted: about 68 years, far beyond any queue's horizon, and well inside
#: PostgreSQL's interval and timestamp ranges.
MAX_SECONDS: Final = float(INT_MAX)

Options = Mapping[str, Any] | None

_DECIMAL: Final = re.compile(r"-?[0-9]{1,19}")


def _fail_type(where: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{where} must be {expected}, got {type(value).__name__} {value!r:.60}")


def check_keys(op: str, options: Options, allowed: frozenset[str]) -> Mapping[str, Any]:
    """The options mapping itself (empty for ``None``), after rejecting unknown keys."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise _fail_type(f"{op}: options", "a mapping", options)
    unknown = sorted(str(key) for key in options if key not in allowed)
    if unknown:
        raise ValueError(
            f"{op}: unknown option {', '.join(map(repr, unknown))};"
            f" expected one of {', '.join(sorted(allowed))}"
        )
    return options


def check_int(where: str, value: object, low: int, high: int) -> int:
    """An ``int`` (not a bool) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail_type(where, "an integer", value)
    if not low <= value <= high:
        raise ValueError(f"{where} must be between {low} and {high}, got {value}")
    return value


def check_seconds(where: str, value: object) -> float:
    """A finite number of seconds from 0 to :data:`MAX_SECONDS`; fractions allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail_type(where, "a number of seconds", value)
    # Compare before converting: math.isfinite() overflows on huge ints.
    if not (0 <= value <= MAX_SECONDS and math.isfinite(value)):
        raise ValueError(f"{where} must be between 0 and {MAX_SECONDS:.0f} seconds, got {value}")
    return float(value)


def check_text(where: str, value: object, *, empty: bool = False) -> str:
    """A string PostgreSQL can store in a TEXT column (no NUL), non-empty unless allowed."""
    if not isinstance(value, str):
        raise _fail_type(where, "a string", value)
    if not value and not empty:
        raise ValueError(f"{where} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{where} contains a NUL character, which PostgreSQL cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{where} contains {value[error.start]!r} (a lone surrogate), which UTF-8 cannot encode"
        ) from None
    return value


def check_key(where: str, value: object) -> str:
    """A ``unique`` key: text of 1 to :data:`MAX_UNIQUE_KEY_BYTES` bytes in UTF-8."""
    key = check_text(where, value)
    if len(key.encode("utf-8")) > MAX_UNIQUE_KEY_BYTES:
        raise ValueError(f"{where} is longer than {MAX_UNIQUE_KEY_BYTES} bytes in UTF-8")
    return key


def check_bool(where: str, value: object) -> bool:
    """``True``/``False``, or 0/1 as Perl callers (and the CLI's ``-x 1``) write it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _fail_type(where, "a boolean", value)


def check_json(where: str, value: object) -> None:
    """Raise unless ``value`` can be stored as JSONB and read back equal.

    (One exception, as in Perl: JSONB keeps numbers as decimals, so a whole float written with
    an exponent, such as ``1e300``, comes back as an ``int`` of the same value.)

    That rules out non-string keys (JSON would turn them into strings), NaN and infinities,
    integers too long to write in decimal, text PostgreSQL refuses (NUL, lone surrogates),
    nesting deeper than the encoder can walk (a value that contains itself is named as such),
    and any type JSON has no form for. The walk is iterative: a hostile document cannot blow
    Python's stack here.
    """
    pending: list[tuple[str, object, int, _Ancestors]] = [(where, value, 0, None)]
    while pending:
        path, item, depth, ancestors = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(_too_deep(where, (path, id(item), ancestors)))
        members = _json_children(path, item)
        if members:
            parent = (path, id(item), ancestors)
            pending.extend((place, member, depth + 1, parent) for place, member in members)


#: The containers above a value, innermost first: (path, id, the ones above it).
_Ancestors = tuple[str, int, "_Ancestors"] | None


def json_problem(where: str, value: object) -> str | None:
    """Why ``value`` cannot be stored as JSONB (:func:`check_json`'s reason), or ``None``."""
    try:
        check_json(where, value)
    except (TypeError, ValueError) as error:
        return str(error)
    return None


def storable_text(text: str) -> str:
    r"""``text`` with what PostgreSQL cannot store written as escapes (``\x00`` for NUL,
    ``\udc80`` for a lone surrogate), so that an error message is kept, not refused."""
    escaped = text.replace("\x00", "\\x00")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def _too_deep(where: str, chain: _Ancestors) -> str:
    """Name the first container on the path that contains itself, else the depth."""
    path: list[tuple[str, int]] = []
    while chain is not None:
        place, identity, chain = chain
        path.append((place, identity))
    seen: dict[int, str] = {}
    for place, identity in reversed(path):
        if identity in seen:
            return f"{place} refers back to {seen[identity]}, which JSON cannot represent"
        seen[identity] = place
    return f"{where} is nested deeper than {MAX_JSON_DEPTH} levels"


def _json_children(path: str, item: object) -> list[tuple[str, object]]:
    """Check one JSON value; return its members to check next."""
    if item is None or isinstance(item, bool):
        return []
    if isinstance(item, int):
        _check_digits(path, item)
        return []
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ValueError(f"{path} holds {item}, which JSON cannot represent")
        return []
    if isinstance(item, str):
        check_text(path, item, empty=True)
        return []
    if isinstance(item, list | tuple):
        return [(f"{path}[{index}]", member) for index, member in enumerate(item)]
    if isinstance(item, Mapping):
        for key in item:
            if not isinstance(key, str):
                raise _fail_type(f"{path} key {key!r}", "a string", key)
            check_text(f"{path} key {key!r}", key, empty=True)
        return [(f"{path}[{key!r}]", member) for key, member in item.items()]
    raise _fail_type(path, "JSON-serialisable", item)


def _check_digits(path: str, item: int) -> None:
    """JSON writes integers in decimal, which Python refuses past
    ``sys.get_int_max_str_digits()`` (4300 digits by default) with a ValueError naming nothing;
    reading one back would fail the same way."""
    if item.bit_length() <= 64:
        return
    try:
        str(item)
    except ValueError:
        limit = sys.get_int_max_str_digits()
        raise ValueError(f"{path} holds an integer of more than {limit} digits") from None


def check_args(where: str, value: object) -> list[Any]:
    """Job arguments: a list (or tuple) of JSON values."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise _fail_type(where, "a list", value)
    check_json(where, value)
    return list(value)


def check_notes(where: str, value: object) -> dict[str, Any]:
    """Job notes: a mapping of string keys to JSON values."""
    if not isinstance(value, Mapping):
        raise _fail_type(where, "a mapping", value)
    check_json(where, value)
    return dict(value)


def check_id(where: str, value: object) -> int:
    """A job, worker or schedule id; strings of digits are accepted, as Perl accepts them."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    return check_int(where, value, -BIGINT_MAX - 1, BIGINT_MAX)


def check_ids(where: str, value: object) -> list[int]:
    """A list of ids (see :func:`check_id`)."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise _fail_type(where, "a list of ids", value)
    return [check_id(f"{where}[{index}]", item) for index, item in enumerate(value)]


def check_names(where: str, value: object) -> list[str]:
    """A list of strings, each storable in a TEXT column."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise _fail_type(where, "a list of strings", value)
    return [check_text(f"{where}[{index}]", item, empty=True) for index, item in enumerate(value)]


def check_states(where: str, value: object) -> list[str]:
    states = check_names(where, value)
    for state in states:
        if state not in JOB_STATES:
            raise ValueError(f"{where}: unknown state {state!r}; expected {', '.join(JOB_STATES)}")
    return states


def check_page(op: str, offset: object, limit: object) -> tuple[int, int]:
    return (
        check_int(f"{op}: offset", offset, 0, BIGINT_MAX),
        check_int(f"{op}: limit", limit, 0, BIGINT_MAX),
    )


@dataclass(frozen=True, slots=True)
class JobOptions:
    """The per-job options shared by ``enqueue`` and schedules (Minion's defaults)."""

    attempts: int = 1
    delay: float = 0.0
    expire: int | None = None
    lax: bool = False
    notes: Mapping[str, Any] = field(default_factory=dict)
    parents: tuple[int, ...] = ()
    priority: int = 0
    queue: str = "default"
    #: Beyond Perl (enqueue only): while a job enqueued with this key is inactive or active,
    #: enqueueing again returns that job's id and creates nothing.
    unique: str | None = None
    #: With ``unique``: the key is also held by a job created less than this many seconds
    #: ago, whatever its state.
    unique_for: float | None = None


_ENQUEUE_KEYS: Final = frozenset(
    ("attempts", "delay", "expire", "lax", "notes", "parents", "priority", "queue", "unique",
     "unique_for")
)
_SCHEDULE_KEYS: Final = frozenset(("attempts", "expire", "lax", "notes", "priority", "queue"))


_JOB_FIELD_CHECKS: Final[dict[str, Callable[[str, Any], object]]] = {
    "attempts": lambda where, value: check_int(where, value, 1, INT_MAX),
    "delay": check_seconds,
    "expire": lambda where, value: check_int(where, value, 1, INT_MAX),
    "lax": check_bool,
    "notes": check_notes,
    "parents": lambda where, value: tuple(check_ids(where, value)),
    "priority": lambda where, value: check_int(where, value, -INT_MAX - 1, INT_MAX),
    "queue": check_text,
    "unique": check_key,
    "unique_for": check_seconds,
}


def _fields(op: str, options: Options, allowed: frozenset[str]) -> dict[str, Any]:
    """Checked values of the present keys; a ``None`` value counts as absent."""
    checked = check_keys(op, options, allowed)
    return {
        key: _JOB_FIELD_CHECKS[key](f"{op}: option {key!r}", value)
        for key, value in checked.items()
        if value is not None
    }


#: What a job given no options gets. Shared: JobOptions is frozen, and nothing writes to its
#: notes (they are copied into each job's columns), so enqueue_many need not build one per job.
_DEFAULT_JOB_OPTIONS: Final = JobOptions()


def parse_enqueue(op: str, task: object, args: object, options: Options) -> JobOptions:
    """Check ``enqueue(task, args, options)``; returns the options with defaults filled in."""
    check_text(f"{op}: task", task)
    check_args(f"{op}: args", args)
    fields = _fields(op, options, _ENQUEUE_KEYS)
    if "unique_for" in fields and "unique" not in fields:
        raise ValueError(f"{op}: option 'unique_for' needs option 'unique', the key it holds")
    return JobOptions(**fields) if fields else _DEFAULT_JOB_OPTIONS


def parse_schedule_options(op: str, options: Options) -> JobOptions:
    return JobOptions(**_fields(op, options, _SCHEDULE_KEYS))


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """``retry_job`` options: ``None`` keeps the job's current value (``lax`` included)."""

    attempts: int | None = None
    delay: float = 0.0
    expire: int | None = None
    lax: bool | None = None
    parents: tuple[int, ...] | None = None
    priority: int | None = None
    queue: str | None = None


_RETRY_KEYS: Final = frozenset(
    ("attempts", "delay", "expire", "lax", "parents", "priority", "queue")
)


def parse_retry(op: str, options: Options) -> RetryOptions:
    """Check ``retry_job`` options.

    Perl sets ``lax`` whenever the key is present, an undefined value meaning false; here a
    ``None`` value leaves ``lax`` alone, which is what Minion's own CLI means to do (SPEC §5.1).
    """
    return RetryOptions(**_fields(op, options, _RETRY_KEYS))


@dataclass(frozen=True, slots=True)
class DequeueOptions:
    id: int | None = None
    min_priority: int | None = None
    queues: tuple[str, ...] = ("default",)
    tasks: tuple[str, ...] | None = None


def parse_dequeue(op: str, wait: object, options: Options) -> tuple[float, DequeueOptions]:
    """Check ``dequeue(worker_id, wait, options)``; ``tasks`` absent means any task."""
    seconds = check_seconds(f"{op}: wait", wait)
    checked = check_keys(op, options, frozenset(("id", "min_priority", "queues", "tasks")))
    fields: dict[str, Any] = {}
    for key, value in checked.items():
        where = f"{op}: option {key!r}"
        if value is None:
            continue
        if key == "id":
            fields[key] = check_id(where, value)
        elif key == "min_priority":
            fields[key] = check_int(where, value, -INT_MAX - 1, INT_MAX)
        else:
            fields[key] = tuple(check_names(where, value))
    return seconds, DequeueOptions(**fields)


_FILTER_CHECKS: Final = {
    "before": check_id,
    "ids": check_ids,
    "names": check_names,
    "notes": check_names,
    "queues": check_names,
    "states": check_states,
    "tasks": check_names,
}


def parse_filter(op: str, options: Options, allowed: frozenset[str]) -> dict[str, Any]:
    """Check listing filters; returns every allowed key, ``None`` where no filter applies."""
    checked = check_keys(op, options, allowed)
    parsed: dict[str, Any] = dict.fromkeys(allowed)
    for key, value in checked.items():
        if value is not None:
            parsed[key] = _FILTER_CHECKS[key](f"{op}: option {key!r}", value)
    return parsed
