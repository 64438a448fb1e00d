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

from minion_daemon.async_job import AsyncJob, is_coroutine_task
from minion_daemon.errors import MinionError
from minion_daemon.job import Job
from minion_daemon.limits import UNLIMITED, Rate, TaskLimit
from minion_daemon.model import Backoff, Mode
from minion_daemon.options import check_text
from minion_daemon.retry import MINION_RETRY, RetryPolicy

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
    retry: RetryPolicy = MINION_RETRY
    #: Fleet-wide limits on its running jobs and starts (:mod:`minion_daemon.limits`).
    limit: TaskLimit = UNLIMITED

    def __post_init__(self) -> None:
        check_text("task name", self.name)
        if not callable(self.target) or (
            isinstance(self.target, type) and not issubclass(self.target, Job | AsyncJob)
        ):
            raise TypeError(
                f"task {self.name!r} must be a function or a Job subclass (or an AsyncJob"
                f" one), got {self.target!r}"
            )
        target = self.target
        if (
            isinstance(target, type)
            and issubclass(target, Job)
            and inspect.iscoroutinefunction(target.run)
        ):
            raise TypeError(
                f"task {self.name!r}: {target.__qualname__} has an async run, so its"
                " database methods must be awaitable too: subclass"
                " minion_daemon.AsyncJob instead of Job"
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
        self._limited: frozenset[str] | None = None

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

    def limited_names(self) -> frozenset[str]:
        """The names of the tasks with a fleet-wide limit (asked on every claim)."""
        if self._limited is None:
            self._limited = frozenset(n for n, spec in self._specs.items() if spec.limit.limited)
        return self._limited

    def add(
        self,
        name: str,
        target: Callable[..., Any] | type,
        *,
        source: str,
        mode: Mode | str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy = MINION_RETRY,
        limit: TaskLimit = UNLIMITED,
    ) -> None:
        """Register one task, in ``mode`` (default: :func:`default_mode`); raises
        :class:`TaskConflictError` if the name is taken."""
        chosen = default_mode(target) if mode is None else Mode.parse(mode, f"task {name!r}")
        self.add_many([TaskSpec(name, target, source, chosen, timeout, retry, limit)])

    def add_many(self, specs: Iterable[TaskSpec]) -> None:
        """Register every spec, or none when any of them conflicts."""
        batch: dict[str, TaskSpec] = {}
        for spec in specs:
            known = batch.get(spec.name) or self._specs.get(spec.name)
            if known is not None and known != spec:
                raise TaskConflictError(_conflict(known, spec))
            batch[spec.name] = spec
        self._specs.update(batch)
        self._ordered = self._limited = None

    def configure(
        self,
        name: str,
        *,
        mode: Mode | None,
        timeout: float | None,
        retry: RetryPolicy | None = None,
        limit: TaskLimit | None = None,
    ) -> bool:
        """Change how a registered task runs (the config's per-task settings; ``mode``,
        ``retry`` and ``limit`` replace the registered ones when given); false if the task is not
        registered."""
        spec = self._specs.get(name)
        if spec is None:
            return False
        mode = spec.mode if mode is None else mode
        retry = spec.retry if retry is None else retry
        limit = spec.limit if limit is None else limit
        self._specs[name] = dataclasses.replace(
            spec, mode=mode, timeout=timeout, retry=retry, limit=limit
        )
        self._limited = None
        return True

    def task(
        self,
        name: str | None = None,
        *,
        mode: Mode | str | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        retry_on: Iterable[str | type[BaseException]] | None = None,
        no_retry_on: Iterable[str | type[BaseException]] = (),
        concurrency: int | None = None,
        rate: Rate | str | None = None,
    ) -> Callable[[F], F]:
        """Decorator registering a function under ``name`` (default: its own name), with the
        retry policy of ``backoff``, ``retry_on`` and ``no_retry_on`` (:class:`RetryPolicy`)
        and the fleet-wide limits ``concurrency`` and ``rate`` (:class:`TaskLimit`).

        The function is returned unchanged; its source is its module, qualified name, file and line.
        """
        retry = RetryPolicy.of(backoff, retry_on, no_retry_on)
        limit = TaskLimit.of(concurrency, rate)

        def register(function: F) -> F:
            self.add(
                name or function.__name__,
                function,
                source=describe_source(function),
                mode=mode,
                timeout=timeout,
                retry=retry,
                limit=limit,
            )
            return function

        return register


def default_mode(target: Callable[..., Any] | type) -> Mode:
    """The mode of a task registered without one: ``async`` for a coroutine, else ``fork``."""
    return Mode.ASYNC if is_coroutine_task(target) else Mode.FORK


def _conflict(known: TaskSpec, new: TaskSpec) -> str:
    """The message for two different registrations of one name."""
    if known.source != new.source:
        return f"task {new.name!r} is registered twice: by {known.source} and by {new.source}"
    # One place registering a name twice with different settings: the sources alone would
    # read "by X and by X", so say what differs instead.
    return (
        f"task {new.name!r} is registered twice by {known.source}, differently:"
        f" {known.target!r} ({_settings(known, new)}) and {new.target!r} ({_settings(new, known)})"
    )


def _settings(spec: TaskSpec, other: TaskSpec) -> str:
    """How ``spec`` runs, with its retry policy and limits where they differ from ``other``'s."""
    settings = f"mode {spec.mode}, timeout {spec.timeout}"
    if spec.retry != other.retry:
        settings += f", {spec.retry}"
    return settings if spec.limit == other.limit else f"{settings}, {spec.limit}"


def describe_source(target: Callable[..., Any] | type) -> str:
    """Where a function or class is defined, for error messages."""
    qualified = f"{target.__module__}.{getattr(target, '__qualname__', repr(target))}"
    try:
        line = inspect.getsourcelines(target)[1]
        return f"{qualified} ({inspect.getsourcefile(target)}:{line})"
    except (OSError, TypeError):
        return qualified
