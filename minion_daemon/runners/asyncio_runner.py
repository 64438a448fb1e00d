"""Async mode: a worker's coroutine tasks, on one event loop in a process of their own.

The worker stays single-threaded and never forks: its fork server forks the event-loop
process (:mod:`minion_daemon.runners.event_loop`) on the first launch, which connects back
over a Unix socket. This runner sends it jobs and cancellations and turns what comes back
into :class:`~minion_daemon.runners.Ended`, recorded by the worker as any other mode's.

What the worker sees of the loop beyond its jobs: lag (a late beat, counted in
``minion_event_loop_lag_seconds``), and a loop held by a coroutine that does not yield
(logged with its job and task). A loop held for ``workers.async_block_grace`` is killed, and
every job it ran fails with a reason that names the holder; a loop that died (kill -9) fails
its jobs as killed, at once, as a dead job process does; the next launch starts another.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import struct
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from minion_daemon import logs, proc
from minion_daemon.model import ExitReason, Mode
from minion_daemon.outcome import Ending, Handed
from minion_daemon.runners import KILLED, Ended
from minion_daemon.runners.forkserver import Inbox, frame

if TYPE_CHECKING:
    from minion_daemon.job import Job
    from minion_daemon.runners.forkserver import ForkServer

#: How long a worker waits for its new event-loop process to connect.
START_TIMEOUT: Final = 30.0
#: How soon the worker tries again to send what the loop's socket could not take yet.
RESEND_PAUSE: Final = 0.05
_RECEIVE_BYTES: Final = 1 << 16
_CREDENTIALS: Final = struct.Struct("3i")

log = logs.get_logger("minion_daemon.runners.asyncio")


@dataclass(slots=True)
class _Running:
    job: Job
    started_at: float


@dataclass(slots=True)
class _Held:
    """The job whose coroutine holds the loop, as the loop's watchdog reported it."""

    job_id: int | None
    task: str | None
    since: float

    def reason(self, now: float) -> str:
        holder = "an unknown task" if self.task is None else f"task {self.task!r}"
        job = "" if self.job_id is None else f" (job {self.job_id})"
        return (
            f"Event loop blocked by {holder}{job} for {now - self.since:.1f} seconds,"
            " which did not yield: its process was killed"
        )


class _EventLoopProcess:
    """The worker's end of its event-loop process."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.inbox = Inbox()
        #: What the socket could not take yet.
        self.outbox = bytearray()

    @classmethod
    def start(cls, server: ForkServer) -> _EventLoopProcess:
        """Have ``server`` fork it and wait for it to connect (from this user only)."""
        address = f"\0minion-daemon-loop-{os.getpid()}-{secrets.token_hex(8)}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(address)
            listener.listen(1)
            listener.settimeout(START_TIMEOUT)
            server.start_event_loop(address)
            channel, _ = listener.accept()
        credentials = channel.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
        pid, uid, _ = _CREDENTIALS.unpack(credentials)
        if uid != os.getuid():
            channel.close()
            raise PermissionError(f"event loop: a process of user {uid} connected instead")
        return cls(pid, channel)

    def send(self, message: list[Any]) -> None:
        self.outbox += frame(message)
        self.flush()

    def flush(self) -> None:
        """Send what the socket takes now; never waits (the loop may be held)."""
        while self.outbox:
            try:
                sent = self.channel.send(self.outbox, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:  # gone: its end of the socket tells the next receive
                self.outbox.clear()
                return
            del self.outbox[:sent]

    def receive(self) -> list[list[Any]] | None:
        """The messages that arrived (never waits); ``None`` once the process is gone and
        they were all read (its last ones first: the next call finds it gone)."""
        messages: list[list[Any]] = []
        while True:
            try:
                data = self.channel.recv(_RECEIVE_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return messages
            except ConnectionResetError:
                data = b""
            if not data:
                return messages or None
            messages.extend(self.inbox.feed(data))

    def close(self) -> None:
        self.channel.close()
        proc.kill(self.pid, signal.SIGKILL)


class AsyncRunner:
    """Runs coroutine tasks in the worker's event-loop process, started on first use."""

    mode = Mode.ASYNC

    def __init__(
        self,
        server: Callable[[], ForkServer],
        *,
        block_grace: float,
        lagged: Callable[[float], None],
    ) -> None:
        self._server = server
        self._block_grace = block_grace
        self._lagged = lagged
        self._process: _EventLoopProcess | None = None
        self._running: dict[int, _Running] = {}
        self._held: _Held | None = None
        #: When the process is to be killed: the loop held too long, or jobs stopped too slowly.
        self._kill_at: dict[str, float] = {}

    def launch(self, jobs: Collection[Job]) -> None:
        if self._process is None:
            self._process = _EventLoopProcess.start(self._server())
            log.info("event_loop.started", pid=self._process.pid)
        now = time.monotonic()
        fields = logs.current_fields()
        for job in jobs:
            spec = job.minion.tasks.get(job.task)
            timeout = None if spec is None else spec.timeout
            message = ["launch", job.id, job.retries, job.task, job.queue, job.args, fields]
            self._process.send([*message, timeout, job.worker_id, job.trace_context])
            self._running[job.id] = _Running(job, now)

    def fds(self) -> list[int]:
        return [] if self._process is None else [self._process.channel.fileno()]

    def collect(self) -> list[Ended]:
        process = self._process
        if process is None:
            return []
        process.flush()
        messages = process.receive()
        ended = [
            self._ended(message[1], message[2:])
            for message in messages or []
            if message[0] == "ended" and message[1] in self._running
        ]
        for message in messages or []:
            if message[0] == "lag":
                self._lag(message[1])
            elif message[0] == "blocked":
                self._blocked(*message[1:])
        if messages is None:
            return ended + self._gone()
        if not self._running:
            self._kill_at.pop("stop", None)
        if self._kill_at and time.monotonic() >= min(self._kill_at.values()):
            self._kill_at.clear()
            proc.kill(process.pid, signal.SIGKILL)  # its closed socket ends its jobs
        return ended

    def _ended(self, job_id: int, how: list[Any]) -> Ended:
        running = self._running.pop(job_id)
        job, kind = running.job, how[0]
        if kind == "result":
            ending = Ending(handed=Handed("result", how[1]))
        elif kind == "error":
            ending = Ending(handed=Handed("error", how[1], final=how[2]))
        elif kind == "timeout":
            ending = Ending(timed_out_after=how[1])
        elif kind == "signal":
            ending = Ending(exit=ExitReason(0, how[1]))
        else:
            job.outcome, job.failure = how[1], how[2]
            ending = Ending(recorded=True)
        return Ended(job, ending, time.monotonic() - running.started_at)

    def _lag(self, seconds: float) -> None:
        """A late beat: the loop runs again (a stall reported before has ended)."""
        self._lagged(seconds)
        if self._held is not None:
            log.info(
                "event_loop.unblocked",
                job_id=self._held.job_id,
                task=self._held.task,
                lag=round(seconds, 3),
            )
            self._held = None
            self._kill_at.pop("blocked", None)

    def _blocked(self, job_id: int | None, task: str | None, stalled: float) -> None:
        now = time.monotonic()
        self._held = _Held(job_id, task, now - stalled)
        log.warning(
            "event_loop.blocked",
            job_id=job_id,
            task=task,
            stalled=round(stalled, 3),
            kill_in=round(max(self._block_grace - stalled, 0), 3),
            fix="await instead of blocking calls, or run the task in mode fork",
        )
        self._kill_at["blocked"] = self._held.since + self._block_grace

    def _gone(self) -> list[Ended]:
        """The process died (killed as held, by the OS, by hand): each of its jobs ends."""
        assert self._process is not None
        now = time.monotonic()
        held = self._held
        log.error(
            "event_loop.died",
            pid=self._process.pid,
            jobs=sorted(self._running),
            blocked_by=None if held is None else held.task,
        )
        if held is not None:
            self._lagged(now - held.since)
            ending = Ending(handed=Handed("error", held.reason(now)))
        else:
            ending = Ending(exit=KILLED)
        ended = [Ended(run.job, ending, now - run.started_at) for run in self._running.values()]
        self._running.clear()
        self._reset()
        return ended

    def _reset(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
        self._held = None
        self._kill_at.clear()

    def due_in(self) -> float:
        due = float("inf")
        if self._process is not None and self._process.outbox:
            due = RESEND_PAUSE
        if self._kill_at:
            due = min(due, min(self._kill_at.values()) - time.monotonic())
        return due

    def signal(self, job_id: int, signum: int) -> bool:
        """Cancel the job's coroutine (``CancelledError`` in it); USR1 and USR2, which a
        coroutine has no handler for, change nothing."""
        if job_id not in self._running or self._process is None:
            return False
        if signum not in (signal.SIGUSR1, signal.SIGUSR2):
            self._process.send(["cancel", job_id, signum])
        return True

    def stop_all(self, grace: float) -> None:
        """Cancel every coroutine; kill the process if they have not ended after ``grace``."""
        if self._process is None or not self._running:
            return
        if grace <= 0:
            proc.kill(self._process.pid, signal.SIGKILL)
            return
        for job_id in self._running:
            self._process.send(["cancel", job_id, signal.SIGTERM])
        self._kill_at.setdefault("stop", time.monotonic() + grace)

    def close(self) -> None:
        self._running.clear()
        self._reset()
