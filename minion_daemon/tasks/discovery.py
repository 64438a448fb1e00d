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

from minion_daemon.tasks import TaskConflictError, TaskLoadError, TaskRegistry, TaskSpec

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
    """The group's entry points (only ``names`` when given), without importing anything."""
    found: dict[str, EntryPointTask] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        task = EntryPointTask(entry.name, entry.value, _distribution(entry))
        known = found.get(task.name)
        if known is not None and known != task:
            raise TaskConflictError(
                f"task {task.name!r} is provided twice: by {known} and by {task}"
            )
        found[task.name] = task
    if names is None:
        return sorted(found.values(), key=lambda task: task.name)
    missing = sorted(set(names) - set(found))
    if missing:
        raise TaskLoadError(
            f"no {ENTRY_POINT_GROUP} entry point named {', '.join(map(repr, missing))}"
            f" (installed: {', '.join(sorted(found)) or 'none'})"
        )
    return [found[name] for name in sorted(set(names))]


def load(task: EntryPointTask) -> TaskSpec:
    """Import the entry point's target; any failure is a :class:`TaskLoadError` naming it."""
    entry = importlib.metadata.EntryPoint(task.name, task.value, ENTRY_POINT_GROUP)
    try:
        target = entry.load()
    except Exception as error:
        raise TaskLoadError(
            f"cannot load {task}: {type(error).__name__}: {error}"
        ) from error
    if not callable(target):
        raise TaskLoadError(f"cannot load {task}: {target!r} is not a function or a class")
    return TaskSpec(task.name, target, str(task))


def load_into(registry: TaskRegistry, names: Collection[str] | None = None) -> list[str]:
    """Load the group's entry points (or ``names``) into ``registry``, all or none."""
    specs = [load(task) for task in list_entry_points(names)]
    registry.add_many(specs)
    return [spec.name for spec in specs]
