"""The event-loop process: a worker's async jobs, as coroutines on one asyncio loop.

The worker's fork server forks it (``runners.forkserver``), so the worker itself never forks
and stays single-threaded; it connects back to the worker over a Unix socket and speaks the
fork server's framing (a 4-byte length and a JSON array). Worker to loop: ``["launch", id,
retries, task, queue, args, log_fields, timeout, worker_id, trace_context]`` and ``["cancel",
id, signum]``. Loop to worker: ``["ended", id, kind, ...]`` (``result`` value, ``error`` text
final, ``recorded`` outcome failure, ``timeout`` seconds, ``signal`` signum), ``["lag",
seconds]`` when a beat of the loop came that late, and ``["blocked", id, task, seconds]`` when
the loop has not beaten for :data:`BLOCKED_AFTER`: the job whose coroutine holds it, found by
a watchdog thread (the loop cannot look at itself while it is held). The worker decides what
to do about it.

It records nothing itself but what a task records through its handle: outcomes go to the
worker, which records them with its next statement, as it does a job process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from minion_daemon import logs, proc
from minion_daemon.job import Job

# The module, not its names: the fork server imports this module to fork the process.
from minion_daemon.runners import forkserver

if TYPE_CHECKING:
    from minion_daemon.minion import Minion

#: Seconds between the loop's beats, which the watchdog thread looks at as often.
BEAT: Final = 0.1
#: A beat this much late is reported (``minion_event_loop_lag_seconds``).
LAG_REPORTED: Final = 0.1
#: A loop that has not beaten for this long is held by a coroutine that does not yield.
BLOCKED_AFTER: Final = 0.5
_RECEIVE_BYTES: Final = 1 << 16


def serve(minion: Minion, address: str, inherited: tuple[int, ...]) -> int:
    """The process body: connect to the worker at ``address`` and run its jobs until it
    closes the connection; ``inherited`` are the fork server's descriptors, closed here."""
    for fd in inherited:
        os.close(fd)
    proc.set_title(f"event loop of worker {os.getppid()}", "minion-aio")
    minion.backend.forget_inherited()
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    channel.connect(address)
    return asyncio.run(_EventLoop(minion, channel).run())


class _EventLoop:
    def __init__(self, minion: Minion, channel: socket.socket) -> None:
        self.minion = minion
        self.channel = channel
        self.inbox = forkserver.Inbox()
        #: The running jobs by id: their asyncio task and their job.
        self.running: dict[int, tuple[asyncio.Task[None], Job]] = {}
        #: The signal each cancelled job was cancelled for.
        self.cancelled: dict[int, int] = {}
        #: The loop and the watchdog thread both write to the worker.
        self.writing = threading.Lock()
        self.beat = time.monotonic()
        self.stopping = threading.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.client = self.minion.async_client()
        closed: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.channel.fileno(), self._receive, closed)
        beating = asyncio.create_task(self._beat())
        watchdog = threading.Thread(target=self._watch, args=(loop,), name="loop-watchdog")
        watchdog.start()
        try:
            await closed
        finally:
            loop.remove_reader(self.channel.fileno())
            self.stopping.set()
            beating.cancel()
            tasks = [task for task, _ in self.running.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.close()
            watchdog.join()
        return 0

    def _send(self, message: list[Any]) -> None:
        with self.writing, contextlib.suppress(OSError):  # a worker gone cannot listen
            self.channel.sendall(forkserver.frame(message))

    def _receive(self, closed: asyncio.Future[None]) -> None:
        while True:
            try:
                data = self.channel.recv(_RECEIVE_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except ConnectionResetError:
                data = b""
            if not data:  # the worker closed its end, or died
                if not closed.done():
                    closed.set_result(None)
                return
            for message in self.inbox.feed(data):
                if message[0] == "launch":
                    self._launch(message)
                elif message[0] == "cancel":
                    self._cancel(*message[1:])

    def _launch(self, message: list[Any]) -> None:
        _, job_id, retries, task, queue, args, fields, timeout, worker_id, trace_context = message
        job = Job(self.minion, job_id, args, retries, task, queue=queue)
        job.worker_id, job.trace_context = worker_id, trace_context
        with logs.bound(**fields, **job.log_fields()):  # the task's context copies them
            running = asyncio.create_task(self._run(job, timeout))
        running.add_done_callback(lambda _: self._cancelled_unstarted(job))
        self.running[job_id] = (running, job)

    def _cancelled_unstarted(self, job: Job) -> None:
        """A job cancelled before its first step never ran :meth:`_run`, which reports the
        others (and takes them from :attr:`running`): report it here."""
        if self.running.pop(job.id, None) is not None:
            signum = self.cancelled.pop(job.id, signal.SIGKILL)
            self._send(["ended", job.id, "signal", signum])

    def _cancel(self, job_id: int, signum: int) -> None:
        if job_id in self.running:
            self.cancelled[job_id] = signum
            self.running[job_id][0].cancel()

    async def _run(self, job: Job, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                error = await job.execute_async(self.client)
        except TimeoutError:
            ended: list[Any] = ["timeout", timeout]
        except asyncio.CancelledError:
            ended = ["signal", self.cancelled.pop(job.id, signal.SIGKILL)]
        else:
            ended = _ending(job, error)
        finally:
            self.running.pop(job.id, None)
        self._send(["ended", job.id, *ended])

    async def _beat(self) -> None:
        while True:
            self.beat = time.monotonic()
            await asyncio.sleep(BEAT)
            lag = time.monotonic() - self.beat - BEAT
            if lag >= LAG_REPORTED:
                self._send(["lag", lag])

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """The watchdog thread: report once per stall the job whose coroutine holds the loop.
        It only reads what the loop leaves as it is while it is held."""
        reported = False
        while not self.stopping.wait(BEAT):
            stalled = time.monotonic() - self.beat - BEAT
            if stalled < BLOCKED_AFTER:
                reported = False
            elif not reported:
                reported = True
                holder = asyncio.current_task(loop)
                running = list(self.running.values())
                job = next((job for task, job in running if task is holder), None)
                self._send(["blocked", job and job.id, job and job.task, stalled])


def _ending(job: Job, error: str | None) -> list[Any]:
    """What the worker needs to record a job whose task returned or raised."""
    ending = job.ending(error)
    if ending.handed is None:
        return ["recorded", job.outcome, job.failure]
    if ending.handed.kind == "result":
        return ["result", ending.handed.value]
    return ["error", ending.handed.value, ending.handed.final]
