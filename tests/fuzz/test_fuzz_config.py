"""Fuzzing the config loader: any file gives a usable Config or a ConfigError naming the file.

Documents are built from the real section and key names mixed with junk, values of every YAML
type (wrong ones, out-of-range numbers, ``${VAR}`` references set and unset), then written as
YAML; raw text and bytes go in too. Nothing else may come out of ``load_config``: no
``ValueError`` from a YAML constructor, no ``UnicodeDecodeError``, no ``RecursionError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.fuzzing import FUZZ
from hypothesis import event, example, given
from hypothesis import strategies as st

from minion_daemon.config import SECTIONS, Config, ConfigError, describe, load_config, parse_config

#: A password that must never show in an error message.
PASSWORD = "Fuzz3dSecret"

ENVIRONMENT = {
    "FUZZ_SET": "value",
    "FUZZ_NUMBER": "5",
    "FUZZ_EMPTY": "",
    "FUZZ_DSN": f"postgresql://app:{PASSWORD}@db/minion",
}

FIELDS = sorted({field.name for kind in SECTIONS.values() for field in dataclasses.fields(kind)})

#: Numbers at and around the bounds the declarations check.
BOUNDS = [
    -1, 0, 1, 22, 23, 25, 26, 100, 101, 1000, 1001, 1024, 1025, 3600, 3601, 10_000, 10_001,
    86400, 86401, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 10**9, 10**9 + 1, 10**40,
]  # fmt: skip

STRINGS = [
    "${FUZZ_SET}", "${FUZZ_NUMBER}", "${FUZZ_EMPTY}", "${FUZZ_UNSET}", "x${FUZZ_SET}y",
    "${FUZZ_DSN}", "${", "${1BAD}", "$FUZZ_SET", "${FUZZ_SET", "fork", "inline", "json",
    "console", "auto", "debug", "info", "127.0.0.1:9464", "[::1]:9464", "h:\u00b2", "h:\u0663",
    "h:0", "h:65536", ":80", "host:", "0.0.0.0:1", "a\x00b", "\ud800",
    f"postgresql://app:{PASSWORD}@db/minion", f"host=db password={PASSWORD}",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BOUNDS),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(STRINGS),
    st.dates(),
)

modes = st.sampled_from(["fork", "inline", "other"]) | scalars
task_settings = st.fixed_dictionaries({}, optional={"mode": modes, "timeout": scalars})

values = st.recursive(
    scalars | task_settings,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(FIELDS), inner, max_size=4),
    max_leaves=12,
)

sections = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8) | st.integers(), values, max_size=6
)

#: Values of the declared type, or near it, by the field's annotation.
TYPED: dict[str, st.SearchStrategy[Any]] = {
    "bool": st.booleans(),
    "int": st.sampled_from(BOUNDS) | st.integers(0, 100),
    "float": st.sampled_from(BOUNDS) | st.floats(0, 1e5) | st.integers(0, 100),
    "str": st.sampled_from(STRINGS) | st.text(min_size=1, max_size=10),
    "str | None": st.sampled_from(STRINGS) | st.none(),
    "tuple[str, ...]": st.lists(st.sampled_from(STRINGS) | st.text(max_size=5), max_size=3),
    "tuple[str, ...] | None": st.lists(st.sampled_from(["a", "b", "\x00"]), max_size=2) | st.none(),
    "dict[str, int]": st.dictionaries(st.text(max_size=5), st.integers(-1, 10_001), max_size=3),
    "dict[str, TaskSettings]": st.dictionaries(st.text(max_size=5), task_settings, max_size=3),
    "AutoMigrate": st.sampled_from(["create", "upgrade", "off", "Off", ""]) | st.booleans(),
    "PoolMode": st.sampled_from(["session", "transaction", "Session", ""]) | st.booleans(),
    "PreparedStatements": st.sampled_from(["auto", "on", "off", "yes", ""]) | st.booleans(),
}


def _plausible(kind: type) -> st.SearchStrategy[dict[str, Any]]:
    """Some of a section's keys, each with a value of its type four times in five."""
    return st.fixed_dictionaries(
        {},
        optional={
            field.name: st.integers(0, 4).flatmap(
                lambda n, typed=TYPED[str(field.type)]: values if n == 0 else typed
            )
            for field in dataclasses.fields(kind)
        },
    )


plausible = st.fixed_dictionaries(
    {}, optional={name: _plausible(kind) for name, kind in SECTIONS.items()}
)

documents = st.integers(0, 2).flatmap(
    lambda n: plausible
    if n
    else st.one_of(
        st.dictionaries(
            st.sampled_from(sorted(SECTIONS)) | st.text(max_size=8) | st.integers(),
            sections | values,
            max_size=5,
        ),
        values,
    )
)


#: Fragments of YAML syntax, for documents that are not dumped from data.
TOKENS = [
    "postgres:", "workers:", "metrics:", "tasks:", " dsn:", " jobs:", " listen:", " queues:",
    "\n", "  ", "- ", "[", "]", "{", "}", ",", ":", "? ", "'", '"', "&a ", "*a", "!!binary ",
    "!!timestamp ", "!!int ", "!!float ", "!!bool ", "!!python/object:os.system ", "2001-02-30",
    "2001-13-01", "12:61:00", "1e400", "0x1F", "${FUZZ_SET}", "${NOPE}", "#", "\t", "\\", "\x00",
    "\ufeff", ".nan", "~", "|", ">",
]  # fmt: skip

raw_documents = st.one_of(
    st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=30).map("".join).map(
        lambda text: text.encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=60),
)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The config file every example overwrites, with the environment its ``${VAR}`` read."""
    with pytest.MonkeyPatch.context() as environment:
        for name, value in ENVIRONMENT.items():
            environment.setenv(name, value)
        environment.delenv("FUZZ_UNSET", raising=False)
        yield tmp_path_factory.mktemp("fuzz_config") / "config.yaml"


def _strings(value: Any) -> list[str]:
    """Every string value in a config tree (keys left out: they only name tasks)."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return [s for field in fields for s in _strings(getattr(value, field.name))]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _check(path: Path) -> None:
    """The property: a usable Config, or a one-line ConfigError naming the file."""
    try:
        config = load_config(path, environ={})
    except ConfigError as error:
        event("ConfigError")
        message = str(error)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message, message
        assert PASSWORD not in message, message
        return
    event("a valid Config")
    assert isinstance(config, Config)
    for name, kind in SECTIONS.items():
        assert isinstance(getattr(config, name), kind)
    for text in _strings(config):
        assert "\x00" not in text, text
        text.encode("utf-8")  # no lone surrogate: libpq, PostgreSQL and the logs take it
    # What check-config prints is a config file that loads as the same configuration.
    printed = yaml.safe_load(yaml.safe_dump(describe(config), sort_keys=False))
    reread = parse_config(printed, "printed")
    # But for what it redacts: the DSNs' passwords and the admin UI's password hash.
    postgres = printed["postgres"]
    assert reread == dataclasses.replace(
        config,
        postgres=dataclasses.replace(
            config.postgres, dsn=postgres["dsn"], listen_dsn=postgres["listen_dsn"]
        ),
        admin=dataclasses.replace(config.admin, password_hash=printed["admin"]["password_hash"]),
    )


@FUZZ
@given(document=documents)
@example(document={"metrics": {"listen": "h:\u00b2"}})
@example(document={"postgres": {"dsn": "a\ud800"}})
@example(document={"workers": {"queues": ["a\x00"]}})
@example(document={"\n": {}})
@example(document={"workers": {"tasks": {"t": {"mode": "inline", "timeout": 10**400}}}})
def test_documents_load_or_raise_a_config_error(path: Path, document: Any) -> None:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    _check(path)


@FUZZ
@given(content=raw_documents)
@example(content=b"workers: {processes: 2001-02-30}\n")
@example(content=b"\xff\xfe")
@example(content=b"postgres: {auto_migrate: !!bool maybe, connect_timeout: !!int ten}\n")
@example(content=b"workers: {dequeue_timeout: !!timestamp soon}\n")
@example(content=b"[" * 3000)
@example(content=f'postgres:\n  dsn: "postgresql://app:{PASSWORD}@db/minion\n'.encode())
@example(content=f"postgres: {{dsn: 'postgresql://app:{PASSWORD}@db/m', jobs: [}}\n".encode())
def test_raw_bytes_load_or_raise_a_config_error(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    _check(path)
