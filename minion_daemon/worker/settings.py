"""``WorkerSettings``: how one worker works, in one frozen, typed object.

Built in one place from the config (:meth:`WorkerSettings.from_config`) or from keyword
arguments, which are the keys of Perl's worker ``status`` (``minion.worker(jobs=8)``,
``minion-daemon worker --jobs 8``). The ``status`` a worker registers, which Perl's tools
read, is derived from it (:meth:`WorkerSettings.status`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from minion_daemon.options import check_names

if TYPE_CHECKING:
    from minion_daemon.config import WorkersConfig

#: Seconds between a worker's pulses (``pulse`` events, and inline timeouts' precision).
PULSE_INTERVAL: Final = 1.0
#: Seconds between TERM and KILL for a daemon worker's running jobs on QUIT.
DAEMON_QUIT_GRACE: Final = 2.0


def _whole(key: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"worker: {key} must be a whole number of at least {low}, got {value!r}")
    return value


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"worker: {key} must be a number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queues: tuple[str, ...] = ("default",)
    #: Concurrent jobs, and extra slots for jobs of at least ``spare_min_priority``.
    jobs: int = 4
    spare: int = 1
    spare_min_priority: int = 1
    #: Inline jobs claimed per statement (batched mode); 1: one job per claim.
    batch: int = 1
    #: Concurrent async jobs (coroutines on the worker's event loop), beside ``jobs``.
    async_jobs: int = 100
    #: Seconds a coroutine may hold the event loop without yielding before its process is
    #: killed, failing its jobs.
    async_block_grace: float = 10.0
    #: Per-task caps on this worker's concurrent jobs.
    limits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    dequeue_timeout: float = 5.0
    heartbeat_interval: float = 300.0
    command_interval: float = 10.0
    #: Seconds between this worker's own repairs and schedule dispatches (0: never; the
    #: daemon's supervisor does both, so its workers do neither).
    repair_interval: float = 21600.0
    dispatch_interval: float = 30.0
    #: Seconds between TERM and KILL for the running jobs on QUIT; 0 (Perl): KILL at once.
    quit_grace: float = 0.0
    #: Seconds between pulses; also how late an inline job's timeout may strike.
    pulse_interval: float = PULSE_INTERVAL

    def __post_init__(self) -> None:
        check_names("worker: queues", list(self.queues))
        for key in ("jobs", "spare", "batch", "async_jobs"):
            _whole(key, getattr(self, key), 1 if key == "batch" else 0)
        priority = self.spare_min_priority
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"worker: spare_min_priority must be a whole number, got {priority!r}")
        for task, limit in self.limits.items():
            _whole(f"limits[{task!r}]", limit)
        for key in (
            "dequeue_timeout",
            "heartbeat_interval",
            "command_interval",
            "repair_interval",
            "dispatch_interval",
            "quit_grace",
            "async_block_grace",
        ):
            _seconds(key, getattr(self, key))
        if not self.pulse_interval > 0:
            raise ValueError(
                f"worker: pulse_interval must be positive, got {self.pulse_interval!r}"
            )

    @classmethod
    def of(cls, **values: Any) -> WorkerSettings:
        """From the keys of Perl's ``status`` (``queues`` may be any sequence, ``limits`` any
        mapping); an unknown key is an error that names it."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"worker: unknown settings {', '.join(unknown)}")
        if "queues" in values:
            values["queues"] = tuple(values["queues"])
        if "limits" in values:
            values["limits"] = MappingProxyType(dict(values["limits"]))
        return cls(**values)

    @classmethod
    def from_config(cls, workers: WorkersConfig, **overrides: Any) -> WorkerSettings:
        """A daemon worker's settings (the supervisor repairs and dispatches, not its workers)."""
        return cls.of(
            queues=workers.queues,
            jobs=workers.jobs,
            spare=workers.spare,
            spare_min_priority=workers.spare_min_priority,
            batch=workers.batch,
            async_jobs=workers.async_jobs,
            async_block_grace=workers.async_block_grace,
            limits=workers.limits,
            dequeue_timeout=workers.dequeue_timeout,
            heartbeat_interval=workers.heartbeat_interval,
            command_interval=workers.command_interval,
            repair_interval=0,
            dispatch_interval=0,
            quit_grace=DAEMON_QUIT_GRACE,
            # Several pulses per liveness timeout: one late pulse (a busy machine) must not kill.
            pulse_interval=min(PULSE_INTERVAL, workers.liveness_timeout / 4),
            **overrides,
        )

    def replace(self, **changes: Any) -> WorkerSettings:
        return dataclasses.replace(self, **changes)

    def status(self) -> dict[str, Any]:
        """Perl's worker ``status`` keys with these values, and ``type: Python``."""
        return {
            "command_interval": self.command_interval,
            "dequeue_timeout": self.dequeue_timeout,
            "dispatch_interval": self.dispatch_interval,
            "heartbeat_interval": self.heartbeat_interval,
            "jobs": self.jobs,
            "limits": dict(self.limits),
            "queues": list(self.queues),
            "repair_interval": self.repair_interval,
            "spare": self.spare,
            "spare_min_priority": self.spare_min_priority,
            "type": "Python",
            "batch": self.batch,
            "async_jobs": self.async_jobs,
        }
