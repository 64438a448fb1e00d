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
import json
import logging
import os
import sys
import time
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
    "Logger",
    "batched",
    "bind",
    "bound",
    "configure",
    "current_fields",
    "flush",
    "get_logger",
    "keep_streams",
]


def get_logger(name: str) -> Logger:
    """A logger taking an event name and fields (``log.info("job.started", job_id=1)``)."""
    return Logger(name)


class Logger:
    """Lines of an event name and fields, for the logger ``name``.

    Until :func:`configure` runs, each line goes to the standard library's logger ``name``
    with the fields as extras, so an application that embeds minion-daemon keeps its own
    logging setup. Once the daemon configured its logging, and its handler is the only one,
    the daemon's own lines are rendered and written directly: a worker logs two lines per job,
    and both the standard library's detour (a record, the caller's frame looked up, a
    formatter) and structlog's general chain cost ten times the rendering. Nothing global in
    structlog is touched.
    """

    __slots__ = ("_fallback", "_standard")

    def __init__(self, name: str) -> None:
        self._standard = logging.getLogger(name)
        self._fallback: structlog.stdlib.BoundLogger = structlog.wrap_logger(
            self._standard,
            processors=[structlog.stdlib.render_to_log_kwargs],
            wrapper_class=structlog.stdlib.BoundLogger,
        )

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, "error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An ``error`` line with the traceback of the exception being handled."""
        self._log(logging.ERROR, "error", event, {**fields, "exc_info": True})

    def _log(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        direct = _Direct.current
        if direct is None or logging.root.handlers != [direct.handler]:
            getattr(self._fallback, method)(event, **fields)
        elif self._standard.isEnabledFor(level):
            direct.write(self._standard, method, event, fields)


class _Direct:
    """The daemon's own lines, rendered for the handler's stream and written to it."""

    #: Set by :func:`configure`.
    current: ClassVar[_Direct | None] = None

    def __init__(
        self, handler: logging.StreamHandler[TextIO], chain: list[Processor], as_json: bool
    ) -> None:
        self.handler = handler
        self.chain = chain
        self.as_json = as_json
        #: Lines held back inside :func:`batched`, written together when it ends.
        self.held: list[str] | None = None

    def write(
        self, logger: logging.Logger, method: str, event: str, fields: dict[str, Any]
    ) -> None:
        if self.as_json and "exc_info" not in fields:
            line = _json_line(logger.name, method, event, fields)
        else:
            rendered: Any = {"event": event, **fields}
            for processor in self.chain:
                rendered = processor(logger, method, rendered)
            line = f"{rendered}\n"
        if self.held is None:
            self.put(line)
        else:
            self.held.append(line)

    def put(self, text: str) -> None:
        handler = self.handler
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write(text)
                handler.stream.flush()
            except (OSError, ValueError):
                pass  # as _LineHandler: a daemon whose terminal closed runs on


#: Built once: ``json.dumps`` with any argument builds an encoder per call.
_ENCODER: Final = json.JSONEncoder(default=repr)


def _json_line(name: str, method: str, event: str, fields: dict[str, Any]) -> str:
    """The JSON line the configured chain would render, built without it: the same keys and
    values (bound fields, level, logger, pid, UTC timestamp), passwords masked."""
    line = {"event": event, **fields}
    for key, value in get_contextvars().items():
        line.setdefault(key, value)
    line["level"] = method
    line["logger"] = name
    line["pid"] = _pid()
    line["timestamp"] = _timestamp()
    _redact_in(line)
    return _ENCODER.encode(line) + "\n"


class _Clock:
    """The UTC timestamp of a line, its date and time formatted once a second."""

    second = -1
    prefix = ""


def _timestamp() -> str:
    now = time.time()
    second = int(now)
    if second != _Clock.second:
        _Clock.second = second
        _Clock.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_Clock.prefix}.{int((now - second) * 1_000_000):06d}Z"


class _Pid:
    """This process's pid, read again in a forked child (a line must not carry its parent's)."""

    value = os.getpid()


def _pid() -> int:
    return _Pid.value


def _forked() -> None:
    _Pid.value = os.getpid()


os.register_at_fork(after_in_child=_forked)


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Write the daemon's own lines logged inside the block together when it ends: one
    write for a worker's pass over its jobs rather than one per line."""
    direct = _Direct.current
    if direct is None or direct.held is not None:
        yield
        return
    direct.held = []
    try:
        yield
    finally:
        flush()
        direct.held = None


def flush() -> None:
    """Write the lines :func:`batched` holds now (before a wait, or a task's own lines)."""
    direct = _Direct.current
    if direct is not None and direct.held:
        held, direct.held = direct.held, []
        direct.put("".join(held))


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
    _Direct.current = _Direct(handler, [*stamped, *rendered], as_json)


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
    event.setdefault("pid", _pid())
    return event


def _redact_secrets(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    _redact_in(event)
    return event


def _redact_in(fields: MutableMapping[str, Any]) -> None:
    for key, value in fields.items():
        kind = type(value)
        if kind is int or kind is float or value is None:
            continue  # the most common fields, which hold no secret
        if isinstance(value, str):
            fields[key] = redact_dsn(value)
        elif isinstance(value, BaseException):
            fields[key] = redact_dsn(str(value))
        elif isinstance(value, dict):
            _redact_in(value)
