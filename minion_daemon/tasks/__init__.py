"""The task registry: which function (or Job subclass) runs a job of each task name.

Every registration records where it came from, so two tasks claiming one name produce an error
that names both places instead of one silently replacing the other.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from minion_daemon.errors import MinionError
from minion_daemon.job import Job
from minion_daemon.model import Mode
from minion_daemon.options import check_text

#: The decorated function keeps its own type, so callers under mypy lose nothing.
F = TypeVar("F", bound=Callable[..., Any])


class TaskConflictError(MinionError, ValueError):
    """Two tasks claim one name; the message names both sources."""


class TaskLoadError(MinionError):
    """A task could not be found or imported; the message names the entry point."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One registered task: its target, where it came from, and how the worker runs it."""

    name: str
    target: Callable[..., Any] | type
    source: str
    mode: Mode = Mode.FORK
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_text("task name", self.name)
        if not callable(self.target) or (
            isinstance(self.target, type) and not issubclass(self.target, Job)
        ):
            raise TypeError(
                f"task {self.name!r} must be a function or a Job subclass, got {self.target!r}"
            )
        Mode.parse(self.mode, f"task {self.name!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not 0 < self.timeout < math.inf
        ):
            raise ValueError(
                f"task {self.name!r}: timeout must be a positive number of seconds,"
                f" got {self.timeout!r}"
            )


class TaskRegistry:
    """Task names to :class:`TaskSpec`; registering is all-or-nothing per batch."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}
        #: The names in order, made once per change: the worker asks on every claim.
        self._ordered: tuple[str, ...] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> TaskSpec | None:
        return self._specs.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._specs)

    def specs(self) -> list[TaskSpec]:
        return list(self._specs.values())

    def ordered_names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        if self._ordered is None:
            self._ordered = tuple(sorted(self._specs))
        return self._ordered

    def add(
        self,
        name: str,
        target: Callable[..., Any] | type,
        *,
        source: str,
        mode: Mode | str = Mode.FORK,
        timeout: float | None = None,
    ) -> None:
        """Register one task; raises :class:`TaskConflictError` if the name is taken."""
        self.add_many([TaskSpec(name, target, source, Mode.parse(mode, f"task {name!r}"), timeout)])

    def add_many(self, specs: Iterable[TaskSpec]) -> None:
        """Register every spec, or none when any of them conflicts."""
        batch: dict[str, TaskSpec] = {}
        for spec in specs:
            known = batch.get(spec.name) or self._specs.get(spec.name)
            if known is not None and known != spec:
                raise TaskConflictError(_conflict(known, spec))
            batch[spec.name] = spec
        self._specs.update(batch)
        self._ordered = None

    def configure(self, name: str, *, mode: Mode, timeout: float | None) -> bool:
        """Change how a registered task runs (the config's per-task settings); false if the
        task is not registered."""
        spec = self._specs.get(name)
        if spec is None:
            return False
        self._specs[name] = dataclasses.replace(spec, mode=mode, timeout=timeout)
        return True

    def task(
        self, name: str | None = None, *, mode: Mode | str = Mode.FORK, timeout: float | None = None
    ) -> Callable[[F], F]:
        """Decorator registering a function under ``name`` (default: its own name).

        The function is returned unchanged; its source is its module, qualified name, file and line.
        """

        def register(function: F) -> F:
            self.add(
                name or function.__name__,
                function,
                source=describe_source(function),
                mode=mode,
                timeout=timeout,
            )
            return function

        return register


def _conflict(known: TaskSpec, new: TaskSpec) -> str:
    """The message for two different registrations of one name."""
    if known.source != new.source:
        return f"task {new.name!r} is registered twice: by {known.source} and by {new.source}"
    # One place registering a name twice with different settings: the sources alone would
    # read "by X and by X", so say what differs instead.
    return (
        f"task {new.name!r} is registered twice by {known.source}, differently:"
        f" {known.target!r} (mode {known.mode}, timeout {known.timeout})"
        f" and {new.target!r} (mode {new.mode}, timeout {new.timeout})"
    )


def describe_source(target: Callable[..., Any] | type) -> str:
    """Where a function or class is defined, for error messages."""
    qualified = f"{target.__module__}.{getattr(target, '__qualname__', repr(target))}"
    try:
        line = inspect.getsourcelines(target)[1]
        return f"{qualified} ({inspect.getsourcefile(target)}:{line})"
    except (OSError, TypeError):
        return qualified
