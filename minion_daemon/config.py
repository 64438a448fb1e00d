"""The YAML configuration: read once, checked once, into one frozen tree.

Each section is a frozen dataclass whose fields declare the key, its default, its meaning and
its parser; :func:`load_config` walks the YAML against those declarations and raises
:class:`ConfigError` naming the file, the key path and what was expected. ``${VAR}`` in a string
value reads the environment, so secrets can stay out of the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from minion_daemon.errors import MinionError
from minion_daemon.limits import MAX_COUNT, Rate, TaskLimit
from minion_daemon.model import (
    AUTO_MIGRATE_CHOICES,
    AutoMigrate,
    Mode,
    PoolMode,
    PreparedStatements,
    auto_migrate_choice,
)
from minion_daemon.retry import Exponential, RetryPolicy

DSN_ENVIRONMENT_VARIABLE: Final = "MINION_DAEMON_DSN"

_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_PORT: Final = re.compile(r"[0-9]{1,5}")
#: The largest config file read: a real one is a few KiB; a path to a log, an image or a
#: device must not fill the memory of the daemon reading it.
MAX_CONFIG_BYTES: Final = 1024 * 1024


class ConfigError(MinionError, ValueError):
    """A configuration that cannot be used; the message names file, key and expectation."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        # One line, whatever the key's characters; and a value quoted back (a DSN with a NUL,
        # say) must not carry its password along.
        key = key if key.isprintable() else repr(key)
        message = f"{source}: {key}: {problem}" if key else f"{source}: {problem}"
        super().__init__(redact_dsn(message))


class _Invalid(Exception):
    """What a parser raises: the expectation, to be placed after the key path, which ``at``
    extends when the problem lies inside the value (a task's own key)."""

    def __init__(self, expectation: str, at: str = "") -> None:
        super().__init__(expectation)
        self.at = at


Parse = Callable[[Any], Any]


def _setting(default: Any, doc: str, parse: Parse, *, restart: bool = False) -> Any:
    """A key: its default, meaning and parser; ``restart``: a reload (HUP) cannot change it."""
    metadata = {"doc": doc, "parse": parse, "restart": restart}
    if isinstance(default, dict | list):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata=metadata
        )
    return dataclasses.field(default=default, metadata=metadata)


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


def integer(low: int, high: int) -> Parse:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"an integer from {low} to {high}, got {_describe(value)}")
        return value

    return parse


def seconds(low: float, high: float) -> Parse:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"a number of seconds from {low:g} to {high:g}, got {_describe(value)}")
        if not (low <= value <= high and math.isfinite(value)):
            raise _Invalid(f"a number of seconds from {low:g} to {high:g}, got {value!r}")
        return float(value)

    return parse


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"true or false, got {_describe(value)}")
    return value


def auto_migrate(value: Any) -> AutoMigrate:
    choice = auto_migrate_choice(value)
    if choice is None:
        raise _Invalid(f"one of {', '.join(AUTO_MIGRATE_CHOICES)}, got {_describe(value)}")
    return choice


def _usable(value: str) -> bool:
    """Text libpq, PostgreSQL and the logs can all take: no NUL, and no lone surrogate (which a
    YAML escape such as ``"\\ud800"`` makes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def text(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not value or not _usable(value):
            raise _Invalid(f"a non-empty string, got {_describe(value)}")
        if choices and value not in choices:
            raise _Invalid(f"one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def optional_text(value: Any) -> str | None:
    return None if value is None else text()(value)


def names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and _usable(v) for v in value
    ):
        raise _Invalid(f"a list of non-empty strings, got {_describe(value)}")
    return tuple(value)


def some_names(value: Any) -> tuple[str, ...]:
    """At least one name: a worker with no queue to take jobs from would never take one."""
    parsed = names(value)
    if not parsed:
        raise _Invalid("a non-empty list of non-empty strings, got an empty list")
    return parsed


def optional_names(value: Any) -> tuple[str, ...] | None:
    return None if value is None else names(value)


def limits(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Invalid(f"a mapping of task names to counts, got {_describe(value)}")
    return {str(task): integer(0, 10_000)(count) for task, count in value.items()}


def listen_address(value: Any) -> str:
    address: str = text()(value)
    host, _, port = address.rpartition(":")
    if not host or not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise _Invalid(f"host:port (for example 127.0.0.1:9464), got {value!r}")
    return address


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSettings:
    """How the workers run one task; ``retry``, when the config gives any of its keys,
    replaces the policy the task was registered with."""

    #: ``None``: the task's own (``async`` for a coroutine, else ``fork``).
    mode: Mode | None = None
    timeout: float | None = None
    retry: RetryPolicy | None = None
    #: Fleet-wide limits, when the config gives ``concurrency`` or ``rate``; they replace
    #: those the task was registered with.
    limit: TaskLimit | None = None


_RETRY_KEYS: Final = ("backoff", "retry_on", "no_retry_on")
_LIMIT_KEYS: Final = ("concurrency", "rate")
_TASK_KEYS: Final = ("mode", "timeout", *_RETRY_KEYS, *_LIMIT_KEYS)
_EXPONENTIAL_KEYS: Final = frozenset(field.name for field in dataclasses.fields(Exponential))


def task_settings(value: Any) -> dict[str, TaskSettings]:
    if not isinstance(value, dict):
        keys = ", ".join(_TASK_KEYS)
        raise _Invalid(f"a mapping of task names to {{{keys}}}, got {_describe(value)}")
    parsed = {}
    for task, settings in value.items():
        if not isinstance(settings, dict) or set(settings) - set(_TASK_KEYS):
            keys = ", ".join(_TASK_KEYS)
            raise _Invalid(f"a mapping with keys of {keys}, got {settings!r}", at=str(task))
        name = str(task)
        parsed[name] = TaskSettings(
            _task_key(name, settings, "mode", _mode),
            _task_key(name, settings, "timeout", seconds(0.001, 1e7)),
            _retry_policy(name, settings) if set(settings) & set(_RETRY_KEYS) else None,
            _task_limit(name, settings) if set(settings) & set(_LIMIT_KEYS) else None,
        )
    return parsed


def _mode(value: Any) -> Mode:
    return Mode(text(*(mode.value for mode in Mode))(value))


def _task_key(
    task: str, settings: dict[str, Any], key: str, parse: Parse, default: Any = None
) -> Any:
    """One of a task's keys, parsed; its problem names the key."""
    if key not in settings:
        return default
    try:
        return parse(settings[key])
    except (_Invalid, ValueError) as problem:
        raise _Invalid(str(problem), at=f"{task}.{key}") from None


def _retry_policy(task: str, settings: dict[str, Any]) -> RetryPolicy:
    """A task's retry keys as a policy; absent keys take the policy's defaults."""
    backoff = _task_key(task, settings, "backoff", _backoff)
    retry_on = _task_key(task, settings, "retry_on", names)
    no_retry_on = _task_key(task, settings, "no_retry_on", names, ())
    try:
        return RetryPolicy(backoff, retry_on, no_retry_on)
    except ValueError as problem:
        raise _Invalid(str(problem), at=task) from None


def _task_limit(task: str, settings: dict[str, Any]) -> TaskLimit:
    """A task's ``concurrency`` (running jobs across the fleet) and ``rate`` (``N/PERIOD``)."""
    concurrency = _task_key(task, settings, "concurrency", integer(1, MAX_COUNT))
    return TaskLimit(concurrency, _task_key(task, settings, "rate", Rate.parse))


def _backoff(value: Any) -> Exponential | None:
    """``minion`` (Minion's ``retries ** 4 + 15``) or the keys of an :class:`Exponential`."""
    if value == "minion":
        return None
    if not isinstance(value, dict) or not set(value) <= _EXPONENTIAL_KEYS:
        keys = ", ".join(sorted(_EXPONENTIAL_KEYS))
        raise _Invalid(f"minion, or a mapping with keys of {keys}, got {_describe(value)}")
    return Exponential(**value)


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresConfig:
    dsn: str | None = _setting(
        None, "libpq DSN or URL; none: a private embedded cluster", optional_text, restart=True
    )
    pool_min_size: int = _setting(1, "connections each worker process keeps open", integer(0, 100))
    pool_max_size: int = _setting(4, "most connections one worker process opens", integer(1, 100))
    connect_timeout: int = _setting(10, "seconds to wait for a connection", integer(1, 3600))
    application_name: str = _setting("minion-daemon", "shown in pg_stat_activity", text())
    max_schema_version: int = _setting(
        25,
        "newest schema to migrate to: 23 beside Perl Minion 10.25, 24 beside 10.28-11.x",
        integer(23, 25),
        restart=True,  # the schema is checked, and migrated, once: at start
    )
    auto_migrate: AutoMigrate = _setting(  # noqa: RUF009 - a str; ruff cannot see the alias
        "create",
        "create: schema for an empty database, an existing one used at its version; upgrade:"
        " also migrate an older one up to max_schema_version; off: never touch it",
        auto_migrate,
        restart=True,
    )
    pool_mode: PoolMode = _setting(  # noqa: RUF009 - a str; ruff cannot see the alias
        "session",
        "session: the server or a session pooler; transaction: PgBouncer's transaction pooling"
        " (no session state, LISTEN only over listen_dsn)",
        text("session", "transaction"),
        restart=True,
    )
    listen_dsn: str | None = _setting(
        None,
        "DSN of a direct connection for LISTEN; none: the dsn, or polling in pool_mode transaction",
        optional_text,
        restart=True,
    )
    prepared_statements: PreparedStatements = _setting(  # noqa: RUF009 - a str, as above
        "auto",
        "auto: on, but off in pool_mode transaction; on: also behind PgBouncer 1.21+ with"
        " max_prepared_statements; off",
        text("auto", "on", "off"),
        restart=True,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MinionConfig:
    missing_after: float = _setting(
        1800, "repair removes workers silent this long", seconds(1, 1e9)
    )
    remove_after: float = _setting(172800, "repair removes finished jobs this old", seconds(0, 1e9))
    stuck_after: float = _setting(172800, "repair fails jobs waiting this long", seconds(1, 1e9))


@dataclasses.dataclass(frozen=True, slots=True)
class WorkersConfig:
    processes: int = _setting(2, "worker processes the supervisor keeps running", integer(0, 1024))
    jobs: int = _setting(4, "concurrent jobs per worker process", integer(0, 10_000))
    spare: int = _setting(1, "extra job slots for high-priority jobs", integer(0, 10_000))
    spare_min_priority: int = _setting(
        1, "priority a job needs for a spare slot", integer(-(2**31), 2**31 - 1)
    )
    queues: tuple[str, ...] = _setting(("default",), "queues to take jobs from", some_names)
    # _setting turns a dict default into a default_factory, so no instance shares it.
    limits: dict[str, int] = _setting({}, "per-task caps on concurrent jobs per worker", limits)  # noqa: RUF009
    dequeue_timeout: float = _setting(5, "longest wait for a job, in seconds", seconds(0, 3600))
    heartbeat_interval: float = _setting(300, "seconds between heartbeats", seconds(1, 86400))
    command_interval: float = _setting(10, "seconds between inbox checks", seconds(0, 86400))
    liveness_timeout: float = _setting(
        60, "a worker silent this long is replaced as hung", seconds(1, 86400)
    )
    tasks: dict[str, TaskSettings] = _setting(  # noqa: RUF009 - a default_factory, as above
        {},
        "per-task mode (fork|inline|async), timeout, backoff, retry_on, no_retry_on, and"
        " fleet-wide concurrency (running jobs) and rate (starts per period: 10/s, 100/1m, 5/30s)",
        task_settings,
    )
    batch: int = _setting(
        1, "inline jobs claimed per statement (1: Minion's one job per claim)", integer(1, 1000)
    )
    async_jobs: int = _setting(
        100, "concurrent async jobs per worker process, beside jobs", integer(0, 100_000)
    )
    async_block_grace: float = _setting(
        10,
        "seconds a coroutine may hold the event loop before its process is killed",
        seconds(0.1, 3600),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RepairConfig:
    enabled: bool = _setting(True, "run repair in the supervisor", boolean)
    interval: float = _setting(
        21600, "seconds between repairs, minus up to half as jitter", seconds(1, 1e9)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulesConfig:
    dispatch_interval: float = _setting(
        30, "seconds between dispatches; 0 disables", seconds(0, 86400)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class TasksConfig:
    entry_points: tuple[str, ...] | None = _setting(
        None, "minion_daemon.tasks entry points to load; none: all installed", optional_names
    )
    modules: tuple[str, ...] = _setting((), "extra modules to import (they register tasks)", names)


@dataclasses.dataclass(frozen=True, slots=True)
class MetricsConfig:
    # Both fixed before the first fork: the socket is bound then, and prometheus-client's
    # multiprocess mode is chosen at its first import.
    enabled: bool = _setting(True, "serve Prometheus metrics", boolean, restart=True)
    listen: str = _setting(
        "127.0.0.1:9464", "address of /metrics, /healthz, /readyz", listen_address, restart=True
    )
    cache_seconds: float = _setting(5, "how long database metrics are reused", seconds(0, 3600))
    query_timeout: float = _setting(
        2, "statement timeout of a scrape's database queries", seconds(0.1, 60)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AdminConfig:
    # The socket is bound before the first fork, so a port in use stops the daemon at once.
    enabled: bool = _setting(True, "serve the web admin UI", boolean, restart=True)
    listen: str = _setting(
        "127.0.0.1:9465", "address of the admin UI", listen_address, restart=True
    )
    password_hash: str | None = _setting(
        None,
        "scrypt hash (minion-daemon admin --hash-password) that turns on login and actions;"
        " none: read-only, loopback only",
        optional_text,
    )
    query_timeout: float = _setting(
        2, "statement timeout of a page's database queries", seconds(0.1, 60)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class LoggingConfig:
    format: str = _setting(
        "auto", "json, console, or auto (console on a TTY)", text("auto", "json", "console")
    )
    level: str = _setting(
        "info", "debug, info, warning or error", text("debug", "info", "warning", "error")
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ShutdownConfig:
    graceful_timeout: float = _setting(
        30, "seconds running jobs get to finish on TERM", seconds(0, 86400)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    postgres: PostgresConfig = dataclasses.field(default_factory=PostgresConfig)
    minion: MinionConfig = dataclasses.field(default_factory=MinionConfig)
    workers: WorkersConfig = dataclasses.field(default_factory=WorkersConfig)
    repair: RepairConfig = dataclasses.field(default_factory=RepairConfig)
    schedules: SchedulesConfig = dataclasses.field(default_factory=SchedulesConfig)
    tasks: TasksConfig = dataclasses.field(default_factory=TasksConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    admin: AdminConfig = dataclasses.field(default_factory=AdminConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    shutdown: ShutdownConfig = dataclasses.field(default_factory=ShutdownConfig)


SECTIONS: Final[dict[str, type]] = {
    field.name: field.default_factory  # type: ignore[misc]
    for field in dataclasses.fields(Config)
}

#: The keys a reload (HUP) cannot change: ``section.key``, in declaration order.
RESTART_KEYS: Final = tuple(
    f"{name}.{field.name}"
    for name, kind in SECTIONS.items()
    for field in dataclasses.fields(kind)
    if field.metadata["restart"]
)


def reloaded(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """The config a reload runs on: ``loaded``, but for the :data:`RESTART_KEYS`, which keep
    their ``running`` values; and those of them that ``loaded`` would change, to be named."""
    sections: dict[str, Any] = {}
    changed: list[str] = []
    for name in SECTIONS:
        old, new = getattr(running, name), getattr(loaded, name)
        kept = {
            field.name: getattr(old, field.name)
            for field in dataclasses.fields(new)
            if field.metadata["restart"] and getattr(old, field.name) != getattr(new, field.name)
        }
        changed += [f"{name}.{key}" for key in kept]
        sections[name] = dataclasses.replace(new, **kept)
    return Config(**sections), changed


_URL_PASSWORD: Final = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE
)
_KEYWORD_PASSWORD: Final = re.compile(
    r"(?P<head>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE
)


def redact_dsn(text: str) -> str:
    """``text`` with every DSN password (URL or ``password=`` form) replaced by ``***``."""
    if "@" not in text and "=" not in text:
        # Neither form can match: the common case of every logged field, kept cheap.
        return text
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)


#: What ``check-config`` prints for a secret.
REDACTED: Final = "***"


def describe(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, passwords and the admin UI's password hash
    (which allows guessing offline) redacted (``check-config``)."""
    data: dict[str, Any] = _plain(dataclasses.asdict(config))
    for key in ("dsn", "listen_dsn"):
        if data["postgres"][key]:
            data["postgres"][key] = redact_dsn(data["postgres"][key])
    if data["admin"]["password_hash"] is not None:
        data["admin"]["password_hash"] = REDACTED
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _expand(value: Any, source: str, key: str) -> Any:
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(source, key, f"environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(lookup, value)


def _section(kind: type, data: Any, source: str, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(source, path, f"expected a mapping, got {_describe(data)}")
    fields = {field.name: field for field in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{path}.{name}"
        if name not in fields:
            raise ConfigError(source, key, f"unknown key; expected one of {', '.join(fields)}")
        try:
            values[name] = fields[name].metadata["parse"](_expand(value, source, key))
        except _Invalid as invalid:
            at = f"{key}.{invalid.at}" if invalid.at else key
            raise ConfigError(source, at, f"expected {invalid}") from None
    return kind(**values)


def parse_config(data: Any, source: str) -> Config:
    """Check a parsed YAML document against the declarations above."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", f"expected a mapping of sections, got {_describe(data)}")
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in SECTIONS:
            expected = ", ".join(SECTIONS)
            raise ConfigError(source, str(name), f"unknown section; expected one of {expected}")
        sections[name] = _section(SECTIONS[name], {} if value is None else value, source, name)
    return Config(**sections)


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check one YAML file (``None``: the defaults), then apply the environment.

    ``MINION_DAEMON_DSN`` beats ``postgres.dsn``: a container or a unit's EnvironmentFile
    supplies the secret, and the same file serves every environment.
    """
    config = Config() if path is None else _read(path)
    environ = os.environ if environ is None else environ
    if dsn := environ.get(DSN_ENVIRONMENT_VARIABLE):
        config = dataclasses.replace(
            config, postgres=dataclasses.replace(config.postgres, dsn=dsn)
        )
    return config


def _read(path: str | Path) -> Config:
    source = str(path)
    try:
        content = _read_bounded(path, source).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            source, "", f"not UTF-8 text: {error.reason} at byte {error.start}"
        ) from None
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as error:
        raise ConfigError(source, "", f"not valid YAML: {_yaml_problem(error)}") from None
    except RecursionError:
        raise ConfigError(source, "", "not valid YAML: nested too deeply") from None
    # PyYAML's constructors raise whatever their conversion raises on a malformed value: a
    # ValueError for the date 2001-02-30 or "!!int x", a KeyError for "!!bool x", an
    # AttributeError for "!!timestamp x".
    except Exception as error:  # noqa: BLE001 - see above; each is a mistake in the file
        problem = f"a value cannot be read ({type(error).__name__}: {error})"
        raise ConfigError(source, "", f"not valid YAML: {problem}") from None
    return parse_config(data, source)


_FILE_KINDS: Final = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _read_bounded(path: str | Path, source: str) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_CONFIG_BYTES`; never blocks.

    Opened without blocking, so a FIFO nobody writes cannot hang a start, a reload or
    ``check-config``; checked with fstat before a byte is read; and read up to one byte past
    the limit, so a file that grows while it is read is still refused.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise ConfigError(source, "", f"cannot read the file: {error.strerror}") from error
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(status.st_mode), "a special file")
            raise ConfigError(source, "", f"not a regular file but {kind}; give a YAML file")
        content = b"" if status.st_size > MAX_CONFIG_BYTES else _read_at_most(descriptor)
    except OSError as error:
        raise ConfigError(source, "", f"cannot read the file: {error.strerror}") from error
    finally:
        os.close(descriptor)
    if status.st_size > MAX_CONFIG_BYTES or len(content) > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", "over 1 MiB, the most a config file may hold; check the path")
    return content


def _read_at_most(descriptor: int) -> bytes:
    """Up to one byte more than a config file may hold."""
    size = MAX_CONFIG_BYTES + 1
    chunks = []
    while size > 0 and (chunk := os.read(descriptor, min(size, 65536))):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where, on one line; never PyYAML's excerpt of the file, which can show
    a password (hence ``from None`` above, too)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = error.problem or error.context
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(error).replace("\n", " ")
