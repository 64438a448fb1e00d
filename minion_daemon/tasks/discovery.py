"""Tasks from installed packages: the ``minion_daemon.tasks`` entry-point group.

Listing and loading are separate on purpose: listing reads package metadata only (the
supervisor does it before it forks, so a bad configuration stops the daemon early), and
loading imports the code (each worker process does it after the fork).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from minion_daemon.tasks import (
    TaskConflictError,
    TaskLoadError,
    TaskRegistry,
    TaskSpec,
    default_mode,
)

ENTRY_POINT_GROUP: Final = "minion_daemon.tasks"


@dataclass(frozen=True, slots=True)
class EntryPointTask:
    """One entry point of the group, not imported yet."""

    name: str
    value: str
    distribution: str

    def __str__(self) -> str:
        return f"entry point {self.name!r} = {self.value!r} ({self.distribution})"


def _distribution(entry: importlib.metadata.EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def list_entry_points(names: Collection[str] | None = None) -> list[EntryPointTask]:
    """The group's entry points (only ``names`` when given), without importing anything.

    Raises :class:`TaskConflictError` when two distributions provide one name, and
    :class:`TaskLoadError` when a requested name has no entry point.
    """
    if isinstance(names, str):
        # A str is a Collection[str] too: "resize" would silently mean r, e, s, i, z.
        raise TypeError(f"names must be a collection of task names, not the string {names!r}")
    found: dict[str, list[EntryPointTask]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        task = EntryPointTask(entry.name, entry.value, _distribution(entry))
        if task not in found.setdefault(task.name, []):
            found[task.name].append(task)
    wanted = sorted(found if names is None else set(names))
    missing = [name for name in wanted if name not in found]
    if missing:
        raise TaskLoadError(
            f"no {ENTRY_POINT_GROUP} entry point named {', '.join(map(repr, missing))}"
            f" (installed: {', '.join(sorted(found)) or 'none'})"
        )
    # Only the tasks asked for must be unambiguous: a clash between two packages over a task
    # this worker does not run is not its problem.
    for name in wanted:
        if len(found[name]) > 1:
            first, second = found[name][:2]
            raise TaskConflictError(f"task {name!r} is provided twice: by {first} and by {second}")
    return [found[name][0] for name in wanted]


def load(task: EntryPointTask) -> TaskSpec:
    """Import the entry point's target; any failure is a :class:`TaskLoadError` naming it."""
    entry = importlib.metadata.EntryPoint(task.name, task.value, ENTRY_POINT_GROUP)
    try:
        target = entry.load()
    except (Exception, SystemExit) as error:  # a module calling sys.exit() at import too
        raise TaskLoadError(f"cannot load {task}: {type(error).__name__}: {error}") from error
    try:
        return TaskSpec(task.name, target, str(task), default_mode(target))
    except (TypeError, ValueError) as error:
        raise TaskLoadError(f"cannot load {task}: {error}") from error


def load_into(registry: TaskRegistry, names: Collection[str] | None = None) -> list[str]:
    """Load the group's entry points (or ``names``) into ``registry``, all or none."""
    specs = [load(task) for task in list_entry_points(names)]
    registry.add_many(specs)
    return [spec.name for spec in specs]
