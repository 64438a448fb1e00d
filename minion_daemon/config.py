"""The YAML configuration: read once, checked once, into one frozen tree.

Each section is a frozen dataclass whose fields declare the key, its type, its default and its
check; :func:`load_config` walks the YAML against those declarations and raises
:class:`ConfigError` naming the file, the key path and what was expected. ``${VAR}`` in a string
value reads the environment, so secrets can stay out of the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from minion_daemon.errors import MinionError

DSN_ENVIRONMENT_VARIABLE: Final = "MINION_DAEMON_DSN"

_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(MinionError, ValueError):
    """A configuration that cannot be used; the message names file, key and expectation."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


Check = Callable[[Any], str | None]


def _setting(default: Any, doc: str, check: Check | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check})


def _between(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"a number from {low} to {high}"

    return check


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresConfig:
    dsn: str | None = _setting(None, "libpq connection string or URL of the Minion database")
    pool_min_size: int = _setting(1, "connections each worker process keeps open", _between(0, 100))
    pool_max_size: int = _setting(4, "most connections one worker process opens", _between(1, 100))
    connect_timeout: int = _setting(10, "seconds to wait for a connection", _between(1, 3600))
    application_name: str = _setting("minion-daemon", "shown in pg_stat_activity")
    max_schema_version: int = _setting(
        25, "newest schema to migrate to: 23 beside Perl Minion 10.25, 24 beside 10.28-11.x",
        _between(23, 25),
    )
    auto_migrate: bool = _setting(True, "migrate the schema up to max_schema_version at start")


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    postgres: PostgresConfig = dataclasses.field(default_factory=PostgresConfig)


Section = TypeVar("Section")


def _expand(value: str, source: str, key: str) -> str:
    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(source, key, f"environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(lookup, value)


_TYPES: Final[dict[str, tuple[type, str]]] = {
    "int": (int, "an integer"),
    "bool": (bool, "true or false"),
    "str": (str, "a string"),
}


def _convert(field: dataclasses.Field[Any], value: Any, source: str, key: str) -> Any:
    kind = str(field.type).replace(" | None", "")
    if isinstance(value, str):
        value = _expand(value, source, key)
    expected, described = _TYPES[kind]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(source, key, f"expected {described}, got {value!r}")
    check: Check | None = field.metadata["check"]
    problem = check(value) if check else None
    if problem:
        raise ConfigError(source, key, f"expected {problem}, got {value!r}")
    return value


def _section(kind: Callable[..., Section], data: Any, source: str, path: str) -> Section:
    if not isinstance(data, Mapping):
        raise ConfigError(source, path, f"expected a mapping, got {data!r}")
    fields = {field.name: field for field in dataclasses.fields(kind)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{path}.{name}"
        if name not in fields:
            raise ConfigError(source, key, f"unknown key; expected one of {', '.join(fields)}")
        if value is not None:
            values[name] = _convert(fields[name], value, source, key)
    return kind(**values)


_SECTIONS: Final[dict[str, Callable[..., Any]]] = {"postgres": PostgresConfig}


def parse_config(data: Any, source: str) -> Config:
    """Check a parsed YAML document against the declarations above."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", f"expected a mapping of sections, got {data!r}")
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _SECTIONS:
            expected = ", ".join(_SECTIONS)
            raise ConfigError(source, str(name), f"unknown section; expected one of {expected}")
        sections[name] = _section(_SECTIONS[name], value, source, name)
    return Config(**sections)


def load_config(path: str | Path) -> Config:
    """Read and check one YAML file; every problem is a :class:`ConfigError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(source, "", f"cannot read the file: {error.strerror}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(source, "", f"not valid YAML: {error}") from error
    return parse_config(data, source)
