"""A worker's free slots: processes (fork and inline jobs, ``jobs`` plus ``spare``) and
coroutines (async jobs, ``async_jobs``), and which tasks one claim may take; pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minion_daemon.model import Mode


@dataclass(frozen=True, slots=True)
class Opening:
    """What one claim may take: jobs of ``tasks``, at most ``limit``; with ``spare``, only a
    spare slot is free, for a job of at least ``spare_min_priority``; with ``spare_next``,
    the spare slot is free too, and the next claim is its turn (one claim cannot ask a
    priority of the process jobs alone); ``complete``: the claim looks for every task the
    worker can take now (not the async or the spare half of such turns)."""

    tasks: list[str]
    limit: int
    spare: bool = False
    spare_next: bool = False
    complete: bool = True


def opening(
    tasks: Sequence[str],
    mode_of: Callable[[str], Mode],
    running: Sequence[Mode],
    *,
    jobs: int,
    spare: int,
    async_jobs: int,
    spare_turn: bool = False,
) -> Opening | None:
    """The claim that fits the free slots, given the tasks that may run (each under its
    limit) and the modes of the running jobs; ``None`` when no slot is free for them.

    One claim takes jobs of any of its tasks, so a claim of both kinds is limited to the
    fewer free slots of the two: it never takes more of a kind than that kind has room for.
    When only a spare process slot is left and the async slots have room, the two take turns
    (``spare_turn``: the spare slot's).
    """
    coroutines = sum(mode == Mode.ASYNC for mode in running)
    processes = len(running) - coroutines
    async_free = async_jobs - coroutines
    process_free = jobs - processes
    async_tasks = [task for task in tasks if mode_of(task) == Mode.ASYNC] if async_free > 0 else []
    process_tasks = [task for task in tasks if mode_of(task) != Mode.ASYNC]
    if process_free + spare <= 0:
        process_tasks = []
    if process_tasks and process_free <= 0:
        if async_tasks and not spare_turn:
            return Opening(async_tasks, async_free, spare_next=True, complete=False)
        return Opening(process_tasks, 1, spare=True, complete=not async_tasks)
    kinds = [
        (free, kind)
        for free, kind in ((process_free, process_tasks), (async_free, async_tasks))
        if kind
    ]
    if not kinds:
        return None
    return Opening(
        [task for task in tasks if task in process_tasks or task in async_tasks],
        min(free for free, _ in kinds),
    )
