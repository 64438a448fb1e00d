"""Fork mode: each job in a process of its own, forked by the worker's fork server.

Beyond Perl: a job that runs past its task's timeout gets TERM, then KILL after
:data:`TIMEOUT_GRACE`; its stdout and stderr become log lines; the ``minion_pid`` note costs
no round trip of its own (the worker sends it with its next statement).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from minion_daemon import logs, proc
from minion_daemon.model import ExitReason, Mode
from minion_daemon.outcome import Ending, Handed
from minion_daemon.output import JobOutput
from minion_daemon.runners import KILLED, Ended
from minion_daemon.runners.forkserver import HANDOVER_BYTES, ForkServer

if TYPE_CHECKING:
    from minion_daemon.job import Job
    from minion_daemon.minion import Minion

#: Seconds between TERM and KILL for a job that ran past its timeout.
TIMEOUT_GRACE: Final = 5.0
#: A job's output is read (and so wakes the worker) at most this often; meanwhile its pipe
#: holds it, and a task that fills the pipe waits.
OUTPUT_PACE: Final = 0.2

log = logs.get_logger("minion_daemon.runners.fork")


@dataclass(slots=True)
class _Running:
    job: Job
    started_at: float
    timeout: float | None
    output: JobOutput | None = None
    handover: int | None = None
    kill_at: float | None = None
    timed_out_after: float | None = None
    #: Signals asked for before the job process existed, sent once it does.
    pending: list[int] = field(default_factory=list)


class ForkServerGoneError(RuntimeError):
    """The fork server died; its job processes died with it."""


class ForkRunner:
    """Runs jobs in processes of their own, through a fork server started on first use (a
    worker starts it before anything else: :meth:`start`)."""

    mode = Mode.FORK

    def __init__(self, minion: Minion, announce: Callable[[Job], None]) -> None:
        self.minion = minion
        self._announce = announce
        self._server: ForkServer | None = None
        self._running: dict[int, _Running] = {}
        #: ``(job id, pid)`` of the job processes started since the last :meth:`take_pids`.
        self._spawned: list[tuple[int, int]] = []
        self._output_read_at = -OUTPUT_PACE

    def start(self) -> None:
        if self._server is None:
            self._server = ForkServer.start(self.minion, self._announce)

    def server(self) -> ForkServer:
        """The fork server, started if it was not (the event-loop process forks from it)."""
        self.start()
        assert self._server is not None
        return self._server

    def launch(self, jobs: Collection[Job]) -> None:
        self.start()
        assert self._server is not None
        now = time.monotonic()
        for job in jobs:
            spec = self.minion.tasks.get(job.task)
            self._server.launch(job)
            self._running[job.id] = _Running(job, now, None if spec is None else spec.timeout)

    def take_pids(self) -> list[tuple[int, int]]:
        """The ``minion_pid`` notes to write: ``(job id, pid)`` of each job started since."""
        spawned, self._spawned = self._spawned, []
        return spawned

    def fds(self) -> list[int]:
        """The server's channel, and the running jobs' output pipes unless their output was
        read within :data:`OUTPUT_PACE` (a chatty job would wake the worker every pass)."""
        if self._server is None:
            return []
        if time.monotonic() < self._output_read_at + OUTPUT_PACE:
            return [self._server.fileno()]
        outputs = [running.output for running in self._running.values()]
        return [self._server.fileno(), *(out.fd for out in outputs if out and not out.ended)]

    def collect(self) -> list[Ended]:
        if self._server is None:
            return []
        messages = self._server.receive()
        if messages is None:
            return self._server_gone()
        ended = []
        for message in messages:
            if message[0] == "started":
                self._started(message[1], message[2])
            elif message[0] == "ended":
                ended.append(self._ended(message[1], proc.decode(message[2])))
        self._read_output()
        self._enforce(time.monotonic())
        return ended

    def _started(self, job_id: int, pid: int) -> None:
        assert self._server is not None
        output, handover = self._server.take_fds()
        running = self._running[job_id]
        os.set_blocking(handover, False)
        with logs.bound(**running.job.log_fields()):  # the fields of its output's log lines
            running.output = JobOutput(output)
        running.handover = handover
        running.job.pid = pid
        self._spawned.append((job_id, pid))
        for signum in running.pending:
            self._server.signal(job_id, signum)
        running.job.emit("spawn", pid)

    def _ended(self, job_id: int, reason: ExitReason) -> Ended:
        running = self._running.pop(job_id)
        job = running.job
        handed, recorded = self._read_handover(running)
        if running.output is not None:
            running.output.close()
        job.emit("reap", job.pid)
        ending = Ending(
            handed=handed, recorded=recorded, timed_out_after=running.timed_out_after, exit=reason
        )
        return Ended(job, ending, time.monotonic() - running.started_at)

    def _read_handover(self, running: _Running) -> tuple[Handed | None, bool]:
        """What the ended job process handed over, or whether it recorded its job itself."""
        if running.handover is None:
            return None, False
        chunks = []
        try:
            while chunk := os.read(running.handover, HANDOVER_BYTES):
                chunks.append(chunk)
        except BlockingIOError:
            pass  # a descendant of the job process still holds the pipe open
        finally:
            os.close(running.handover)
        kind, _, rest = b"".join(chunks).partition(b"\n")
        job = running.job
        if kind == b"result":
            return Handed("result", json.loads(rest)), False
        if kind in (b"error", b"final"):
            return Handed("error", json.loads(rest), final=kind == b"final"), False
        if kind in (b"finished", b"failed", b"retried"):
            job.outcome = kind.decode()
            job.failure = rest.decode(errors="replace") or None
            return None, True
        return None, False

    def _server_gone(self) -> list[Ended]:
        """Every job of a dead fork server died with it: each ends as killed."""
        assert self._server is not None
        log.error("forkserver.died", pid=self._server.pid, jobs=sorted(self._running))
        ended = []
        for job_id in list(self._running):
            ended.append(self._ended(job_id, KILLED))
        with contextlib.suppress(OSError):
            self._server.close()
        self._server = None
        raise ForkServerGoneError(ended)

    def _read_output(self) -> None:
        """Log what the running jobs wrote. The next read waits for :data:`OUTPUT_PACE`,
        unless a pipe was found full: its job waits for the read."""
        outputs = [running.output for running in self._running.values() if running.output]
        read = [out for out in outputs if out.read()]
        if read:
            full = any(out.was_full for out in read)
            self._output_read_at = -OUTPUT_PACE if full else time.monotonic()

    def _enforce(self, now: float) -> None:
        for running in self._running.values():
            if running.kill_at is not None:
                if now >= running.kill_at:
                    running.kill_at = float("inf")
                    self.signal(running.job.id, signal.SIGKILL)
                continue
            timeout = running.timeout
            if timeout is not None and now - running.started_at > timeout:
                running.timed_out_after = timeout
                self._terminate(running, TIMEOUT_GRACE)

    def _terminate(self, running: _Running, grace: float) -> None:
        if grace <= 0:
            self.signal(running.job.id, signal.SIGKILL)
        elif running.kill_at is None:
            self.signal(running.job.id, signal.SIGTERM)
            running.kill_at = time.monotonic() + grace

    def due_in(self) -> float:
        now = time.monotonic()
        paced = self._output_read_at + OUTPUT_PACE - now
        due = paced if paced > 0 else float("inf")
        for running in self._running.values():
            if running.kill_at is not None:
                due = min(due, running.kill_at - now)
            elif running.timeout is not None:
                due = min(due, running.started_at + running.timeout - now)
        return due

    def signal(self, job_id: int, signum: int) -> bool:
        running = self._running.get(job_id)
        if running is None or self._server is None:
            return False
        if running.job.pid is None:
            running.pending.append(signum)
        else:
            with contextlib.suppress(OSError):
                self._server.signal(job_id, signum)
        return True

    def stop_all(self, grace: float) -> None:
        for running in self._running.values():
            self._terminate(running, grace)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for running in self._running.values():
            if running.output is not None:
                running.output.close()
            if running.handover is not None:
                os.close(running.handover)
        self._running.clear()
