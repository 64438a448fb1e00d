"""The fork server: the small single-threaded process a worker's job processes fork from.

A worker starts it when it starts working, before its pool, its threads or any database
connection exist, so that no process that runs threads ever forks a job (a fork copies one
thread and whatever locks the others held). It has the tasks and nothing of the worker's
running state; it freezes its heap (``gc.freeze()``) so that a job process's collections do
not write to pages shared with it. It keeps one job process forked ahead of its job (a
spare, waiting on a pipe), hands it the next job the worker sends, forks the next spare once
it has nothing else to do, reaps the job processes, and tells the worker.

The death chain: the fork server dies with its worker (kill -9 included), and a job process
with its fork server, each by the kernel's parent-death signal; a worker whose fork server is
gone fails its fork-mode jobs as killed and stops (the supervisor starts another).

The protocol, over a stream socketpair: each message is a 4-byte length and a JSON array.
Worker to server: ``["launch", id, retries, task, queue, args, log_fields, worker_id,
trace_context]``, ``["signal", id, signum]`` and ``["event_loop", address, log_fields]`` (fork
the worker's event-loop process, which connects to the worker at that Unix socket address:
``runners.event_loop``). Server to worker: ``["started", id, pid]`` carrying two descriptors
(the job's output pipe and its handover pipe, both read ends) and ``["ended", id,
wait_status]``, which always follows the job's ``started``.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from minion_daemon import logs, proc, tracing
from minion_daemon.errors import DatabaseUnavailableError
from minion_daemon.options import check_json
from minion_daemon.output import pipe, send_to
from minion_daemon.runners import event_loop

if TYPE_CHECKING:
    from minion_daemon.job import Job
    from minion_daemon.minion import Minion

#: How long a job process keeps trying to record its outcome while the database is away.
RECORD_PATIENCE: Final = 120.0
#: Longest failure summary a job process sends its worker (the job's result holds it all).
SUMMARY_BYTES: Final = 1000
#: The largest message a job process hands its worker: within the 64 KiB a Linux pipe holds,
#: so the one write into the fresh pipe never blocks, whenever the worker gets to read it.
HANDOVER_BYTES: Final = 60_000
#: Signals a fork server leaves to its worker: a terminal's Ctrl-C or a kill of the worker's
#: process group must not take the job processes from a worker that finishes them first.
_LEFT_TO_THE_WORKER: Final = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)
_HEADER: Final = struct.Struct("!I")
_RECEIVE_BYTES: Final = 1 << 16
#: Room for the descriptors of one message: a stream socket's read stops at a message that
#: carries descriptors, so one read never brings more than one message's two.
_ANCILLARY_BYTES: Final = socket.CMSG_SPACE(2 * array.array("i").itemsize)

log = logs.get_logger("minion_daemon.forkserver")


def frame(message: list[Any]) -> bytes:
    """One message as it travels: its length, then its JSON."""
    # default=str: a log field an embedding application bound may not be JSON.
    payload = json.dumps(message, separators=(",", ":"), default=str).encode()
    return _HEADER.pack(len(payload)) + payload


class Inbox:
    """The messages in a byte stream, complete ones only, and the descriptors that came."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        #: Descriptors received, in the order they came (each ``started`` brings two).
        self.fds: deque[int] = deque()

    def feed(self, data: bytes) -> Iterator[list[Any]]:
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                return
            message = json.loads(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            yield message


class ForkServer:
    """The worker's end of its fork server."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self._inbox = Inbox()

    @classmethod
    def start(cls, minion: Minion, announce: Callable[[Job], None]) -> ForkServer:
        """Fork the server; ``announce(job)`` runs there for each job before its fork (the
        worker's ``dequeue`` listeners)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent = os.getpid()
        try:
            pid = proc.fork(
                lambda: _serve(theirs, mine, minion, announce, parent),
                job=False,
                parent_death=signal.SIGKILL,
                ignored=_LEFT_TO_THE_WORKER,
            )
        finally:
            theirs.close()
        return cls(pid, mine)

    def fileno(self) -> int:
        return self.channel.fileno()

    def launch(self, job: Job) -> None:
        # The worker's log fields (its id, ...) travel along: the job process logs with them.
        fields = logs.current_fields()
        message = [
            "launch", job.id, job.retries, job.task, job.queue, job.args, fields,
            job.worker_id, job.trace_context,
        ]  # fmt: skip
        self.channel.sendall(frame(message))

    def signal(self, job_id: int, signum: int) -> None:
        self.channel.sendall(frame(["signal", job_id, signum]))

    def start_event_loop(self, address: str) -> None:
        """Have the server fork the event-loop process, which connects to ``address``."""
        self.channel.sendall(frame(["event_loop", address, logs.current_fields()]))

    def receive(self) -> list[list[Any]] | None:
        """The messages that arrived (never waits); ``None`` once the server is gone."""
        messages: list[list[Any]] = []
        while True:
            try:
                # Not socket.recv_fds: Python 3.11's ignores its flags, and would block.
                data, ancillary, _, _ = self.channel.recvmsg(
                    _RECEIVE_BYTES, _ANCILLARY_BYTES, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                return messages
            except ConnectionResetError:
                data, ancillary = b"", []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    self._inbox.fds.extend(fds)
            if not data:
                return messages or None
            messages.extend(self._inbox.feed(data))

    def take_fds(self) -> tuple[int, int]:
        """The two descriptors of the ``started`` message just read."""
        return self._inbox.fds.popleft(), self._inbox.fds.popleft()

    def close(self) -> None:
        """Close the channel: the server kills what still runs, reaps it and exits."""
        self.channel.close()
        proc.reap(self.pid, block=True)


# The server process


def _serve(
    channel: socket.socket,
    workers_end: socket.socket,
    minion: Minion,
    announce: Callable[[Job], None],
    worker: int,
) -> int:
    workers_end.close()
    proc.set_title(f"fork server of worker {worker}", "minion-forksrv")
    minion.backend.forget_inherited()
    wake_read, wake_write = os.pipe()
    for end in (wake_read, wake_write):
        os.set_blocking(end, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    tracing.prepare()
    # Everything alive now lives as long as the server: the collector need not walk it again,
    # and a job process's collections then leave those pages shared.
    gc.freeze()
    server = _Server(channel, minion, announce, (wake_read, wake_write))
    return server.run()


@dataclass(slots=True)
class _Spare:
    """A job process forked ahead of its job, waiting for it on ``job_pipe``; the read ends of
    its output and handover pipes go to the worker with its job."""

    pid: int
    job_pipe: int
    output: int
    handover: int

    def close(self) -> None:
        for fd in (self.job_pipe, self.output, self.handover):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Server:
    """Forks a spare job process ahead of the next job, whenever it has nothing else to do,
    so that a job starts without waiting for its fork (the fork, and the copy-on-write faults
    it brings in both processes, are most of a job process's cost), hands it the job when the
    worker sends one, reaps the job processes and reports."""

    def __init__(
        self,
        channel: socket.socket,
        minion: Minion,
        announce: Callable[[Job], None],
        wakeup: tuple[int, int],
    ) -> None:
        self.channel = channel
        self.minion = minion
        self.announce = announce
        self.wakeup = wakeup
        #: The job processes by pid: their job ids.
        self.children: dict[int, int] = {}
        self.spare: _Spare | None = None
        self.inbox = Inbox()

    def run(self) -> int:
        while True:
            if self.spare is None:
                self.spare = self._fork_spare()
            readable, _, _ = select.select([self.channel.fileno(), self.wakeup[0]], [], [])
            proc.drain(self.wakeup[0])
            self._reap()
            if self.channel.fileno() in readable and not self._receive():
                break
        if self.spare is not None:
            self.children[self.spare.pid] = 0  # killed and reaped with the job processes
            self.spare.close()
        for pid in self.children:
            proc.kill_group(pid, signal.SIGKILL)
        while self.children:
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(-1, 0)
                self.children.pop(pid, None)
                continue
            break
        return 0

    def _receive(self) -> bool:
        while True:
            try:
                data = self.channel.recv(_RECEIVE_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except ConnectionResetError:
                return False
            if not data:
                return False  # the worker closed its end, or died
            for message in self.inbox.feed(data):
                if message[0] == "launch":
                    self._launch(message)
                elif message[0] == "signal":
                    self._signal(*message[1:])
                elif message[0] == "event_loop":
                    self._start_event_loop(*message[1:])

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if self.spare is not None and pid == self.spare.pid:
                # Killed before it had a job: nothing to report, another is forked.
                self.spare.close()
                self.spare = None
                continue
            job_id = self.children.pop(pid, None)
            if job_id is not None:
                self.channel.sendall(frame(["ended", job_id, status]))

    def _signal(self, job_id: int, signum: int) -> None:
        # A scan of the few running jobs, rather than a second map to keep in step.
        pid = next((pid for pid, running in self.children.items() if running == job_id), None)
        if pid is None:
            return
        # A signal that ends the job reaches its whole process group, so whatever the task
        # started ends with it. USR1 and USR2 are messages to the task, which handles them;
        # by their default action they would kill the task's children.
        if signum in (signal.SIGUSR1, signal.SIGUSR2):
            proc.kill(pid, signum)
        else:
            proc.kill_group(pid, signum)

    def _start_event_loop(self, address: str, fields: dict[str, Any]) -> None:
        """Fork the worker's event-loop process (``runners.event_loop``); it is reaped
        unreported, its worker seeing its connection close."""
        spare = self.spare
        spares = () if spare is None else (spare.job_pipe, spare.output, spare.handover)
        inherited = (self.channel.fileno(), *self.wakeup, *spares)
        with logs.bound(**fields):
            proc.fork(
                lambda: event_loop.serve(self.minion, address, inherited),
                job=False,
                parent_death=signal.SIGKILL,
                ignored=_LEFT_TO_THE_WORKER,
            )

    def _fork_spare(self) -> _Spare:
        job_read, job_write = os.pipe()
        handover_read, handover_write = os.pipe()
        output_read, output_write = pipe()
        mine = (job_write, handover_read, output_read, self.wakeup[0], self.wakeup[1])
        try:
            pid = proc.fork(
                lambda: _job_process(
                    self.minion,
                    self.announce,
                    self.channel,
                    inherited=mine,
                    job_pipe=job_read,
                    handover=handover_write,
                    output=output_write,
                ),
                job=True,
            )
        finally:
            for fd in (job_read, handover_write, output_write):
                os.close(fd)
        return _Spare(pid, job_write, output_read, handover_read)

    def _launch(self, message: list[Any]) -> None:
        job_id, framed = message[1], frame(message)
        spare = self.spare or self._fork_spare()
        self.spare = None
        try:
            # Whole, whatever its size: the spare reads it all as soon as it can.
            _write_all(spare.job_pipe, framed)
        except OSError:
            # Killed before its job came: the job goes to a process forked for it now.
            spare.close()
            proc.reap(spare.pid, block=True)
            spare = self._fork_spare()
            _write_all(spare.job_pipe, framed)
        self.children[spare.pid] = job_id
        try:
            socket.send_fds(
                self.channel,
                [frame(["started", job_id, spare.pid])],
                [spare.output, spare.handover],
            )
        finally:
            spare.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# The job process


def _job_process(
    minion: Minion,
    announce: Callable[[Job], None],
    channel: socket.socket,
    *,
    inherited: tuple[int, ...],
    job_pipe: int,
    handover: int,
    output: int,
) -> int:
    channel.close()
    for fd in inherited:
        os.close(fd)
    send_to(output)
    proc.set_title("job process, waiting for its job", "minion-job")
    with os.fdopen(job_pipe, "rb") as job_input:
        header = job_input.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return 0  # the fork server is gone: no job will come
        (length,) = _HEADER.unpack(header)
        message = json.loads(job_input.read(length))
    _, job_id, retries, task, queue, args, fields, worker_id, trace_context = message
    job = minion.class_for_task(task)(minion, job_id, args, retries, task, queue=queue)
    job.worker_id, job.trace_context = worker_id, trace_context
    # The worker's fields and the job's: a task's own log lines name its job.
    logs.bind(**{**fields, **job.log_fields()})
    announce(job)
    proc.set_title(f"job {job.id} {job.task}", "minion-job")
    job.pid = os.getpid()
    try:
        error = job.execute()
    except SystemExit as leaving:
        # A task that calls sys.exit(n) means exit code n, as exit(n) does in Perl.
        return leaving.code if isinstance(leaving.code, int) else proc.EXIT_CRASHED
    message = _handover(job, error)
    if message is None:
        _record_patiently(job, error)
        if job.outcome is not None:
            message = f"{job.outcome}\n{job.failure or ''}".encode(errors="replace")
            message = message[:SUMMARY_BYTES]
    if message:
        with contextlib.suppress(OSError):  # a worker gone cannot listen anyway
            os.write(handover, message)
    job.emit("cleanup")
    return 0


def _handover(job: Job, error: str | None) -> bytes | None:
    """The message that lets the worker record this job (``result``, ``error``, or ``final``
    for an error its task's retry policy does not retry; a newline; the JSON value); ``None``
    when the job process must record it itself (the task already did, or the value does not
    fit the pipe or cannot be stored, which recording then reports as it always does). Empty
    for a task that returned nothing: the worker's finish after the clean exit records the
    null result, as in Perl."""
    if job.outcome is not None:
        return None
    if error is None and job.result is None:
        return b""
    kind, value = ("result", job.result) if error is None else ("error", error)
    if job.final:
        kind = "final"
    try:
        check_json(f"job {job.id}: {kind}", value)
        message = f"{kind}\n{json.dumps(value)}".encode()
    except (TypeError, ValueError):
        return None
    return message if len(message) <= HANDOVER_BYTES else None


def _record_patiently(job: Job, error: str | None) -> None:
    """Record the outcome, waiting out a database outage of up to :data:`RECORD_PATIENCE`.

    The work is done; giving up at once would turn a brief outage into a failure and a second
    run of the task.
    """
    deadline = time.monotonic() + RECORD_PATIENCE
    pause = 0.5
    while True:
        try:
            if error is not None:
                job.fail(error, retry=not job.final)
            elif job.outcome is None:
                job.finish(job.result)
        except DatabaseUnavailableError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 10.0)
        else:
            return
