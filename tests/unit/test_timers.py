"""Duty timers on a clock passed in as numbers: no sleep, no I/O."""

from __future__ import annotations

import math
import random

import pytest

from minion_daemon.timers import Deadline, Periodic, earliest


def test_periodic_is_due_at_start_then_every_interval() -> None:
    timer = Periodic(10.0)
    assert timer.remaining(100.0) == 0.0
    assert timer.due(100.0)
    assert not timer.due(100.0)
    assert timer.remaining(104.0) == 6.0
    assert not timer.due(109.9)
    assert timer.due(110.0)
    assert timer.remaining(110.0) == 10.0


def test_periodic_without_run_at_start_waits_one_interval_from_first_look() -> None:
    timer = Periodic(10.0, run_at_start=False)
    assert not timer.due(50.0)
    assert timer.remaining(55.0) == 5.0
    assert timer.due(60.0)


def test_remaining_starts_the_clock_like_due() -> None:
    timer = Periodic(10.0, run_at_start=False)
    assert timer.remaining(50.0) == 10.0
    assert timer.due(60.0)


def test_late_call_skips_missed_runs_instead_of_bursting() -> None:
    timer = Periodic(10.0)
    assert timer.due(0.0)
    assert timer.due(95.0)
    assert not timer.due(100.0)
    assert timer.remaining(100.0) == 5.0


def test_jitter_brings_each_run_forward_within_bounds() -> None:
    timer = Periodic(100.0, jitter=0.25, rng=random.Random(42))
    now = 0.0
    gaps = set()
    for _ in range(200):
        assert timer.due(now)
        gap = timer.remaining(now)
        assert 75.0 < gap <= 100.0
        gaps.add(gap)
        now += gap
    # Drawn fresh each time, not once.
    assert len(gaps) > 100


def test_jitter_follows_the_injected_random() -> None:
    timer = Periodic(100.0, jitter=0.5, rng=random.Random(7))
    expected = 100.0 - random.Random(7).random() * 50.0
    assert timer.due(0.0)
    assert timer.remaining(0.0) == pytest.approx(expected)


@pytest.mark.parametrize("jitter", [-0.1, 1.5, math.nan])
def test_jitter_out_of_range_is_rejected(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        Periodic(10.0, jitter=jitter)


@pytest.mark.parametrize("interval", [0.0, -1.0])
@pytest.mark.parametrize("run_at_start", [True, False])
def test_non_positive_interval_disables_the_timer(interval: float, run_at_start: bool) -> None:
    timer = Periodic(interval, run_at_start=run_at_start)
    assert not timer.due(0.0)
    assert not timer.due(1e9)
    assert timer.remaining(0.0) == math.inf


def test_reset_postpones_by_exactly_one_interval() -> None:
    timer = Periodic(10.0, jitter=0.5, rng=random.Random(1))
    timer.reset(3.0)
    assert not timer.due(12.9)
    assert timer.remaining(12.0) == 1.0
    assert timer.due(13.0)


def test_deadline() -> None:
    deadline = Deadline(30.0)
    assert not deadline.expired(29.5)
    assert deadline.remaining(29.5) == 0.5
    assert deadline.expired(30.0)
    assert deadline.remaining(31.0) == 0.0


def test_earliest_picks_the_smallest_remaining_time() -> None:
    repair = Periodic(60.0)
    assert repair.due(0.0)
    assert earliest(10.0, repair, Deadline(15.0), None, Periodic(0.0)) == 5.0
    assert earliest(10.0, repair, None) == 50.0


def test_earliest_with_nothing_to_wait_for_is_infinite() -> None:
    assert earliest(0.0) == math.inf
    assert earliest(0.0, None, Periodic(-1.0)) == math.inf


def test_earliest_is_zero_when_something_is_due() -> None:
    assert earliest(5.0, Periodic(60.0), Deadline(100.0)) == 0.0
    assert earliest(5.0, Deadline(1.0)) == 0.0
