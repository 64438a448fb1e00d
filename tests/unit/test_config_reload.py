"""What a reload (HUP) applies: every key but those declared to need a restart, which keep
their running values and are named; the example file and ``check-config`` name them too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from minion_daemon.config import RESTART_KEYS, parse_config, reloaded

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def test_the_keys_that_need_a_restart_are_the_bound_sockets_and_the_database_at_start() -> None:
    assert RESTART_KEYS == (
        "postgres.dsn",
        "postgres.max_schema_version",
        "postgres.auto_migrate",
        "postgres.pool_mode",
        "postgres.listen_dsn",
        "postgres.prepared_statements",
        "metrics.enabled",
        "metrics.listen",
        "admin.enabled",
        "admin.listen",
    )


def test_a_reload_takes_every_other_key_and_names_the_restart_keys_it_changes() -> None:
    running = parse_config({"postgres": {"dsn": "host=a"}, "metrics": {"listen": "[::1]:9"}}, "a")
    loaded = parse_config(
        {
            "postgres": {"dsn": "host=b", "pool_max_size": 9},
            "minion": {"remove_after": 0},
            "repair": {"interval": 60},
            "metrics": {"listen": "[::1]:9", "cache_seconds": 1},
            "admin": {"enabled": False},
        },
        "b",
    )
    config, changed = reloaded(running, loaded)
    assert changed == ["postgres.dsn", "admin.enabled"]
    assert (config.postgres.dsn, config.admin.enabled) == ("host=a", True)
    assert config.postgres.pool_max_size == 9
    assert (config.minion.remove_after, config.repair.interval) == (0, 60)
    assert config.metrics.cache_seconds == 1


def test_a_reload_of_the_same_file_changes_nothing() -> None:
    running = parse_config({"admin": {"listen": "127.0.0.1:1"}}, "a")
    assert reloaded(running, running) == (running, [])


def test_the_example_marks_exactly_the_keys_that_need_a_restart() -> None:
    marked, section = [], ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if heading := re.fullmatch(r"([a-z_]+):", line):
            section = heading[1]
        elif key := re.fullmatch(r"  ([a-z_]+): .*  # restart", line):
            marked.append(f"{section}.{key[1]}")
    assert tuple(marked) == RESTART_KEYS


def test_check_config_names_the_keys_a_reload_cannot_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minion_daemon.cli import main

    path = tmp_path / "config.yaml"
    path.write_text("workers: {processes: 3}\n", encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    output = capsys.readouterr().out
    comments = [line for line in output.splitlines() if line.startswith("#")]
    assert "need a restart" in comments[0]
    assert all(key in "\n".join(comments) for key in RESTART_KEYS)
    assert yaml.safe_load(output)["workers"]["processes"] == 3  # still the YAML it was
