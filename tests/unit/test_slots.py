"""The claim a worker's free slots allow: process slots and async slots, never over either."""

from __future__ import annotations

import pytest

from minion_daemon.model import Mode
from minion_daemon.worker.slots import Opening, opening

MODES = {"mail": Mode.FORK, "resize": Mode.INLINE, "fetch": Mode.ASYNC, "ping": Mode.ASYNC}
TASKS = ["fetch", "mail", "ping", "resize"]
A, F = Mode.ASYNC, Mode.FORK


@pytest.mark.parametrize(
    ("tasks", "running", "expected"),
    [
        # Both kinds free: one claim of every task, as many as the fewer free slots.
        (TASKS, [], Opening(TASKS, 4)),
        (TASKS, [F, F, F], Opening(TASKS, 1)),
        # Async only: the async slots alone bound it.
        (["fetch", "ping"], [A] * 30, Opening(["fetch", "ping"], 70)),
        # Process slots full, spare left: the async tasks and the spare slot take turns.
        (TASKS, [F] * 4, Opening(["fetch", "ping"], 100, spare_next=True, complete=False)),
        # ... and without async room, the spare slot does, for one job of the spare priority.
        (TASKS, [F] * 4 + [A] * 100, Opening(["mail", "resize"], 1, spare=True)),
        # Everything full.
        (TASKS, [F] * 5 + [A] * 100, None),
        # Async slots full: process tasks only.
        (TASKS, [A] * 100, Opening(["mail", "resize"], 4)),
        (["fetch"], [A] * 100, None),
    ],
)
def test_a_claim_never_takes_more_of_a_kind_than_its_free_slots(
    tasks: list[str], running: list[Mode], expected: Opening | None
) -> None:
    assert opening(tasks, MODES.__getitem__, running, jobs=4, spare=1, async_jobs=100) == expected


def test_the_spare_slot_gets_its_turn_after_a_claim_of_async_jobs() -> None:
    turn = opening(TASKS, MODES.__getitem__, [F] * 4, jobs=4, spare=1, async_jobs=100,
                   spare_turn=True)
    assert turn == Opening(["mail", "resize"], 1, spare=True, complete=False)
