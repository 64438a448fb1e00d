"""The task registry: which function (or Job subclass) runs a job of each task name.

Every registration records where it came from, so two tasks claiming one name produce an error
that names both places instead of one silently replacing the other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from minion_daemon.errors import MinionError
from minion_daemon.options import check_text

MODES: Final = ("fork", "inline")


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
    mode: str = "fork"
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_text("task name", self.name)
        if not callable(self.target):
            raise TypeError(f"task {self.name!r} must be a function or a Job subclass")
        if self.mode not in MODES:
            raise ValueError(f"task {self.name!r}: mode must be fork or inline, got {self.mode!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not self.timeout > 0
        ):
            raise ValueError(
                f"task {self.name!r}: timeout must be a positive number of seconds,"
                f" got {self.timeout!r}"
            )


class TaskRegistry:
    """Task names to :class:`TaskSpec`; registering is all-or-nothing per batch."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

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

    def add(
        self,
        name: str,
        target: Callable[..., Any] | type,
        *,
        source: str,
        mode: str = "fork",
        timeout: float | None = None,
    ) -> None:
        """Register one task; raises :class:`TaskConflictError` if the name is taken."""
        self.add_many([TaskSpec(name, target, source, mode, timeout)])

    def add_many(self, specs: Iterable[TaskSpec]) -> None:
        """Register every spec, or none when any of them conflicts."""
        batch: dict[str, TaskSpec] = {}
        for spec in specs:
            known = batch.get(spec.name) or self._specs.get(spec.name)
            if known is not None and known != spec:
                raise TaskConflictError(
                    f"task {spec.name!r} is registered twice: by {known.source} and by"
                    f" {spec.source}"
                )
            batch[spec.name] = spec
        self._specs.update(batch)

    def task(
        self, name: str | None = None, *, mode: str = "fork", timeout: float | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a function under ``name`` (default: its own name)."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.add(
                name or function.__name__,
                function,
                source=describe_source(function),
                mode=mode,
                timeout=timeout,
            )
            return function

        return register


def describe_source(target: Callable[..., Any] | type) -> str:
    """Where a function or class is defined, for error messages."""
    qualified = f"{target.__module__}.{getattr(target, '__qualname__', repr(target))}"
    try:
        line = inspect.getsourcelines(target)[1]
        return f"{qualified} ({inspect.getsourcefile(target)}:{line})"
    except (OSError, TypeError):
        return qualified
