"""Pure pieces of the worker: task limits, remote commands, exit statuses, listings."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from minion_daemon import proc
from minion_daemon.commands import KillJob, parse_kill, parse_stop, whole_number
from minion_daemon.events import EventEmitter
from minion_daemon.iterators import Listing
from minion_daemon.proc import ExitReason, decode
from minion_daemon.worker import desired_tasks


@pytest.mark.parametrize(
    ("limits", "available", "active", "expected"),
    [
        ({}, [], [], []),
        ({"foo": 2}, ["foo", "bar"], ["foo", "foo"], ["bar"]),
        ({"foo": 0}, ["foo", "bar"], [], ["bar"]),
        ({"foo": 2, "bar": 1}, ["foo", "bar", "baz"], ["foo", "bar", "foo"], ["baz"]),
        ({}, ["foo", "bar"], ["foo", "foo", "bar"], ["foo", "bar"]),
    ],
)
def test_130_desired_tasks(
    limits: dict[str, int], available: list[str], active: list[str], expected: list[str]
) -> None:
    assert desired_tasks(limits, available, active) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (4, 4), ("12", 12), ("abc", None), ("-1", None), (-1, None), (True, None),
     (None, None), (1.5, None), ("1.5", None), (" 3", None)],
)
def test_111_jobs_and_spare_take_only_whole_numbers(value: Any, expected: int | None) -> None:
    assert whole_number(value) == expected


def test_112_kill_and_stop_parse_perl_shapes() -> None:
    assert parse_kill(["INT", 5]) == KillJob(signal.SIGINT, 5)
    assert parse_kill(["USR2", "7"]) == KillJob(signal.SIGUSR2, 7)
    assert parse_kill(["HUP", 5]) is None
    assert parse_kill(["INT"]) is None
    assert parse_kill(["INT", "x"]) is None
    assert parse_stop([9]) == KillJob(signal.SIGKILL, 9)
    assert parse_stop([]) is None


def _status_of(end: Any) -> int:
    pid = os.fork()
    if pid == 0:
        end()
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def test_exit_statuses_decode_as_perl_reports_them() -> None:
    assert decode(_status_of(lambda: os._exit(3))) == ExitReason(3, 0)
    assert decode(_status_of(lambda: os.kill(os.getpid(), signal.SIGKILL))) == ExitReason(0, 9)
    assert decode(_status_of(lambda: None)).clean
    assert str(ExitReason(1, 0)) == "exit code: 1, signal: 0"


def test_events_reach_listeners_in_order_until_unsubscribed() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []
    first = emitter.on("x", lambda source, value: seen.append(("first", value)))
    emitter.on("x", lambda source, value: seen.append(("second", source is emitter)))
    emitter.emit("x", 1)
    emitter.unsubscribe("x", first)
    emitter.emit("x", 2)
    assert seen == [("first", 1), ("second", True), ("second", True)]
    emitter.emit("y", 3)
    assert len(seen) == 3, "an event nobody listens to reaches nobody"


class _Rows:
    """A listing source over ids held in memory, as list_jobs pages them by `before`."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def __call__(
        self, offset: int, limit: int, options: dict[str, Any]
    ) -> tuple[list[dict[str, int]], int]:
        before = options.get("before")
        matching = [i for i in sorted(self.ids, reverse=True) if before is None or i < before]
        return [{"id": i} for i in matching[offset : offset + limit]], len(matching)


def test_8_52_listing_pages_by_before_newest_first() -> None:
    listing = Listing(_Rows([1, 2, 3, 4, 5]), {}, size=2)
    assert [item["id"] for item in listing] == [5, 4, 3, 2, 1]
    assert listing.options["before"] == 1
    assert listing.total == 5


def test_10_53_total_is_corrected_at_the_next_page() -> None:
    rows = _Rows([1, 2, 3, 4, 5])
    listing = Listing(rows, {}, size=2)
    assert next(listing)["id"] == 5
    assert listing.total == 5
    rows.ids.remove(2)
    rows.ids.append(6)
    assert [next(listing)["id"] for _ in range(2)] == [4, 3]
    assert listing.total == 4
    assert [item["id"] for item in listing] == [1]
    assert Listing(rows, {}, size=2).total == 5


def test_listing_of_nothing_has_total_zero() -> None:
    listing = Listing(_Rows([]), {}, size=3)
    assert listing.total == 0
    assert list(listing) == []
    with pytest.raises(ValueError, match="fetch size"):
        Listing(_Rows([]), {}, size=0)


@pytest.mark.parametrize("job", [True, False])
def test_a_signal_sent_the_moment_a_child_is_forked_meets_the_childs_dispositions(
    job: bool,
) -> None:
    """INT sent as soon as fork returns reaches the child's default action, not the parent's
    dispositions copied with it (here SIG_IGN, as in pytest-xdist's workers), where it was
    lost while the child had not yet set its own."""
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for _ in range(20):
            pid = proc.fork(lambda: int(time.sleep(5) or 0), job=job)
            os.kill(pid, signal.SIGINT)
            assert proc.reap(pid, block=True) == ExitReason(0, signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, ignored)
