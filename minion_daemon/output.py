"""What a task writes to stdout and stderr, as ``job.output`` log lines of its job.

A job process's descriptors 1 and 2 are one pipe, which its worker reads and logs line by
line with the job's fields: Python's ``print``, a C extension's ``printf`` and a subprocess's
output all arrive there, and a crash's traceback too, so none of it breaks a JSON log, and
none of it fails the task when the daemon's terminal is gone. The pipe buffers what the
worker has not read yet; a task that fills it waits for the worker's next read.

An inline task runs in its worker, whose descriptors stay the worker's own: there, Python's
``sys.stdout`` and ``sys.stderr`` are swapped for the duration of the task.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import io
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from minion_daemon import logs

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: Longest line logged as one; a longer one (or output that never ends its line) is cut.
LINE_CHARS: Final = 16_384
#: What a job's pipe is asked to hold (Linux's most for anyone), so a task that writes a lot
#: rarely waits for its worker.
PIPE_BYTES: Final = 1 << 20
#: What one read of a job's pipe takes at most (so a task that writes without pause cannot
#: hold its worker in the read): a pipe's worth.
READ_BYTES: Final = PIPE_BYTES

log = logs.get_logger("minion_daemon.output")


class LineLog(io.RawIOBase):
    """A writable binary stream whose every line becomes a ``job.output`` log line, with
    the log fields bound when it was made (a job's, for lines its worker logs later), or with
    those bound when the line is logged (``snapshot=False``)."""

    def __init__(self, *, snapshot: bool = True) -> None:
        super().__init__()
        self._fields = logs.current_fields() if snapshot else {}
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""
        self._logging = False

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data)
        *lines, partial = (self._partial + self._decoder.decode(chunk)).split("\n")
        while len(partial) > LINE_CHARS:
            lines.append(partial[:LINE_CHARS])
            partial = partial[LINE_CHARS:]
        self._partial = partial
        for line in lines:
            self._log(line)
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self.end_line()
        super().close()

    def end_line(self) -> None:
        """Log what was written after the last newline, as a line of its own."""
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if rest:
            self._log(rest)

    def _log(self, line: str) -> None:
        # A log handler that writes to sys.stderr would bring the line back here.
        if self._logging:
            return
        self._logging = True
        try:
            with logs.bound(**self._fields):
                log.info("job.output", line=line.removesuffix("\r"))
        finally:
            self._logging = False


def pipe() -> tuple[int, int]:
    """A pipe for a job's output: its read end and write end, holding what it can."""
    read, write = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # a lower system limit: the default size, then
            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read, write


class JobOutput:
    """The worker's end of a job process's stdout and stderr."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        #: Whether every writer closed the pipe (it stays readable then, with nothing in it).
        self.ended = False
        #: Whether the last read found the pipe full: its writer may be waiting for the next.
        self.was_full = False
        self._capacity = (
            fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) if hasattr(fcntl, "F_GETPIPE_SZ") else 65_536
        )
        self._lines = LineLog()

    def read(self) -> bool:
        """Log what was written since the last read; true if anything was."""
        taken = 0
        while taken < READ_BYTES and not self.ended:
            try:
                chunk = os.read(self.fd, READ_BYTES - taken)
            except BlockingIOError:
                break
            self.ended = not chunk
            taken += len(chunk)
            self._lines.write(chunk)
        self.was_full = taken >= self._capacity
        return taken > 0

    def close(self) -> None:
        """Log what is left, the last line even if unfinished; a descendant of the job
        process that still holds the pipe writes into the void from now on."""
        self.read()
        self._lines.close()
        os.close(self.fd)


def send_to(fd: int) -> None:
    """In a job process: point descriptors 1 and 2 at ``fd``, the log at a copy of where
    they pointed, so that log lines still go straight to the log."""
    logs.keep_streams()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class _Capture:
    """This process's stream for :func:`captured`, made on first use and kept: a worker
    running thousands of inline jobs a second would build and tear down three stream objects
    for each."""

    lines: LineLog | None = None
    stream: io.TextIOWrapper | None = None
    busy = False


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Python's ``sys.stdout`` and ``sys.stderr`` as log lines within the block, with the log
    fields bound when each line is written (a job's, inside its block)."""
    kept = not _Capture.busy  # a job run inside another's block gets a stream of its own
    if not kept:
        lines = LineLog()
        stream = _line_stream(lines)
    else:
        if _Capture.stream is None or _Capture.lines is None:
            _Capture.lines = LineLog(snapshot=False)
            _Capture.stream = _line_stream(_Capture.lines)
        lines, stream = _Capture.lines, _Capture.stream
        _Capture.busy = True
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        if kept:
            _Capture.busy = False
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
            lines.end_line()
        else:
            stream.close()


def _line_stream(lines: LineLog) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.BufferedWriter(lines), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
