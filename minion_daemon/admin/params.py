"""Query and form parameters, checked: anything unusable is a 400 naming the parameter."""

from __future__ import annotations

from typing import Final

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from minion_daemon.options import INT_MAX

JOB_STATES: Final = ("inactive", "active", "failed", "finished")
#: The longest page of any listing: a page view reads at most this many rows.
MAX_LIMIT: Final = 200
_MAX_TEXT: Final = 1000


def whole(values: MultiDict[str, str], name: str, default: int, high: int = INT_MAX) -> int:
    """The parameter as an integer in 0..high (the default when absent or empty)."""
    raw = values.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not raw.isascii() or int(raw) > high:
        raise BadRequest(f"{name}: expected a whole number up to {high}, got {raw[:40]!r}")
    return int(raw)


def integer(values: MultiDict[str, str], name: str, low: int, high: int) -> int | None:
    """The parameter as a signed integer in low..high, or ``None`` when absent or empty."""
    raw = values.get(name, "").strip()
    if raw == "":
        return None
    try:
        number = int(raw, 10)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise BadRequest(f"{name}: expected a whole number from {low} to {high}, got {raw[:40]!r}")
    return number


def ids(values: MultiDict[str, str], name: str = "id") -> list[int]:
    numbers = []
    for raw in values.getlist(name):
        if raw == "":
            continue
        if not raw.isdigit() or not raw.isascii() or not 0 < int(raw) <= 2**63 - 1:
            raise BadRequest(f"{name}: expected job ids (whole numbers), got {raw[:40]!r}")
        numbers.append(int(raw))
    return numbers


def texts(values: MultiDict[str, str], name: str) -> list[str]:
    found = [value for value in values.getlist(name) if value != ""]
    for value in found:
        if len(value) > _MAX_TEXT or "\x00" in value:
            raise BadRequest(f"{name}: too long or holds a NUL character")
    return found


def states(values: MultiDict[str, str]) -> list[str]:
    found = texts(values, "state")
    for state in found:
        if state not in JOB_STATES:
            raise BadRequest(f"state: expected one of {', '.join(JOB_STATES)}, got {state[:40]!r}")
    return found


def limit(values: MultiDict[str, str], default: int) -> int:
    size = whole(values, "limit", default, MAX_LIMIT)
    if size == 0:
        raise BadRequest(f"limit: expected 1 to {MAX_LIMIT}")
    return size
