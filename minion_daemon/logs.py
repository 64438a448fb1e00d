"""Structured logging: JSON lines for machines, readable lines for people, never a secret.

Every line is an event name plus fields (``worker.spawned worker_pid=…``), rendered as one
JSON object per line when the output is not a terminal (or ``logging.format: json``) and as
aligned console text otherwise. Standard-library records (psycopg, the pool, a task's own
``logging`` calls) go through the same chain, so a log shipper sees one format.

Fields bound with :func:`bind` (a worker's ``worker_id``, a job's ``job_id``) appear on every
line of that process until unbound; a forked job process inherits them, so a task's own log
lines name the job that wrote them. ``pid`` is on every line.

DSN passwords are masked on the way out, whatever field or traceback they hide in: an error
message from libpq or a config dump must never leak one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar, Final, TextIO

import structlog
from structlog.contextvars import (
    bind_contextvars,
    bound_contextvars,
    get_contextvars,
    merge_contextvars,
)
from structlog.typing import EventDict, Processor, WrappedLogger

from minion_daemon.config import redact_dsn

FORMATS: Final = ("auto", "json", "console")

__all__ = [
    "FORMATS",
    "bind",
    "bound",
    "configure",
    "current_fields",
    "get_logger",
    "keep_streams",
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger taking an event name and fields (``log.info("job.started", job_id=1)``).

    Until :func:`configure` runs, it hands each line to the standard library's logger
    ``name`` with the fields as extras, so an application that embeds minion-daemon keeps its
    own logging setup. Once the daemon configured its logging, its own lines are rendered and
    written directly, by the same chain the standard library's records go through: a worker
    logs a few lines per job, and the detour (two log records, the caller's frame looked up,
    the handler's formatter) cost about ten times the rendering. Nothing global in structlog
    is touched.
    """
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[_route],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger


def _route(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """The last processor of our loggers: render and write the line when the daemon's
    logging (:func:`configure`) is the only one in place, else hand it to the standard
    library (whose other handlers, a test's capture say, then see it too)."""
    direct = _Direct.current
    if direct is None or logging.root.handlers != [direct.handler]:
        return structlog.stdlib.render_to_log_kwargs(logger, method, event)
    direct.write(logger, method, event)
    raise structlog.DropEvent


class _Direct:
    """The daemon's own lines, rendered by the handler's chain and written to its stream."""

    #: Set by :func:`configure`.
    current: ClassVar[_Direct | None] = None

    def __init__(self, handler: logging.StreamHandler[TextIO], chain: list[Processor]):
        self.handler = handler
        self.chain = chain

    def write(self, logger: logging.Logger, method: str, event: EventDict) -> None:
        if not logger.isEnabledFor(_LEVELS.get(method, logging.INFO)):
            return
        rendered: Any = event
        for processor in self.chain:
            rendered = processor(logger, method, rendered)
        handler = self.handler
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write(f"{rendered}\n")
                handler.stream.flush()
            except (OSError, ValueError):
                pass  # as _LineHandler: a daemon whose terminal closed runs on


_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
def bind(**fields: Any) -> None:
    """Add ``fields`` to every following line of this process (and of its forks)."""
    bind_contextvars(**fields)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to the lines logged inside the block (and by processes forked in it)."""
    with bound_contextvars(**fields):
        yield


def current_fields() -> dict[str, Any]:
    """The fields bound now, to log lines on behalf of this context later."""
    return get_contextvars()


def configure(format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log line of this process to ``stream`` (stderr) in ``format`` at ``level``."""
    if format not in FORMATS:
        raise ValueError(f"logging format must be one of {', '.join(FORMATS)}, got {format!r}")
    stream = stream or sys.stderr
    as_json = format == "json" or (format == "auto" and not _is_terminal(stream))
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(stream))
    )
    handler = _LineHandler(stream)
    stamped: list[Processor] = [
        merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_pid,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendered: list[Processor] = [
        # Tracebacks become text before the redaction, in both formats.
        structlog.processors.format_exc_info,
        _redact_secrets,
        renderer,
    ]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamped, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendered],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _Direct.current = _Direct(handler, [*stamped, *rendered])


class _LineHandler(logging.StreamHandler[TextIO]):
    """A stream handler that drops a line it cannot write: a daemon whose terminal closed
    (EIO, EPIPE) runs on, and the standard report of the failure would go to that terminal."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not isinstance(sys.exc_info()[1], OSError | ValueError):
            super().handleError(record)


def keep_streams() -> None:
    """Have the log handlers that write to descriptor 1 or 2 write to a copy of it instead,
    so this process can point those descriptors elsewhere (a job process, at its pipe)."""
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, logging.StreamHandler):
            continue
        try:
            fd = handler.stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue  # not a descriptor (a StringIO in tests), or closed
        if fd in (1, 2):
            copy = os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="backslashreplace")
            handler.setStream(copy)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # a closed stream is no terminal
        return False


def _add_pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # Read on every line: a forked process must not carry its parent's pid.
    event.setdefault("pid", os.getpid())
    return event


def _redact_secrets(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    _redact_in(event)
    return event


def _redact_in(fields: MutableMapping[str, Any]) -> None:
    for key, value in fields.items():
        if isinstance(value, str):
            fields[key] = redact_dsn(value)
        elif isinstance(value, BaseException):
            fields[key] = redact_dsn(str(value))
        elif isinstance(value, dict):
            _redact_in(value)
