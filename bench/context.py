"""What every phase gets: the sizes of this run, the databases, tools and progress output."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.database import Database
from minion_daemon import Minion


@dataclass(frozen=True)
class Sizes:
    """How much each phase does. The full run is sized for < 15 minutes on 2 cores."""

    enqueue_seconds: float = 5
    enqueue_clients: tuple[int, ...] = (1, 4)
    enqueue_many_batch: int = 1000
    processes: tuple[int, ...] = (1, 2, 4)
    jobs_per_process: int = 4
    fork_jobs: int = 2000
    async_noop_jobs: int = 2000
    inline_jobs: int = 6000
    batched_jobs: int = 40000
    perl_jobs: int = 1000
    pgbench_jobs: int = 4000
    latency_jobs: int = 250
    latency_warmup: int = 10
    latency_gap: float = 0.03
    scale_rows: int = 1_000_000
    scale_mid_rows: int = 100_000
    scale_waiting: int = 100_000
    scale_chunk: int = 100_000
    scale_jobs: int = 2000
    timing_repeats: int = 5
    memory_jobs: int = 3000
    memory_processes: int = 2
    tracing_rounds: int = 3


FULL = Sizes()
QUICK = Sizes(
    enqueue_seconds=2,
    processes=(1, 2),
    fork_jobs=300,
    async_noop_jobs=500,
    inline_jobs=1000,
    batched_jobs=3000,
    perl_jobs=200,
    pgbench_jobs=800,
    latency_jobs=50,
    scale_rows=100_000,
    scale_mid_rows=10_000,
    scale_waiting=10_000,
    scale_chunk=50_000,
    scale_jobs=500,
    timing_repeats=3,
    memory_jobs=500,
)


class Progress:
    """Lines on stderr, each with the seconds since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._last = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)

    def every(self, message: str, seconds: float = 2.0) -> None:
        """Say ``message`` unless something was said by this in the last ``seconds``."""
        now = time.monotonic()
        if now - self._last >= seconds:
            self._last = now
            self.say(message)


@dataclass
class Context:
    sizes: Sizes
    main: Database
    minion: Minion
    workdir: Path
    progress: Progress
    pgbench: str | None
    batch: int
    batch_supported: bool
    perl: Database | None = None
    perl_minion: Minion | None = None
    #: Figures that are not table rows (latency samples, memory per process...), for the JSON.
    details: dict[str, Any] = field(default_factory=dict)
