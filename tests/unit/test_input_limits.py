"""Inputs a user controls are bounded: a config file's size, its queue list, the JSON options.

Each is refused with one line naming the thing and exit code 2, never a traceback; the files
that could block or grow without end (a FIFO, /dev/zero) are tried on a subprocess in
tests/e2e/test_daemon_limits.py, where a hang cannot stall the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minion_daemon.cli import main
from minion_daemon.config import ConfigError, load_config

#: Deeper than any recursive JSON parser can follow on Python's stack.
DEEP = "[" * 100_000 + "]" * 100_000


def test_a_config_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    # Valid YAML all through (comments), so only its size can be the problem.
    path.write_text("# padding\n" * (2 * 1024 * 1024 // 10), encoding="utf-8")
    with pytest.raises(ConfigError, match="over 1 MiB") as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_a_directory_as_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)


def test_an_empty_queue_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("workers:\n  queues: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"workers\.queues: expected a non-empty list"):
        load_config(path)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["job", "-e", "task", "-a", DEEP], "-a/--args"),
        (["job", "-e", "task", "-n", DEEP], "-n/--notes"),
        (["job", "-b", "jobs", "-a", DEEP], "-a/--args"),
        (["schedule", "-e", "s", "-c", "* * * * *", "-t", "task", "-a", DEEP], "-a/--args"),
        (["schedule", "-e", "s", "-c", "* * * * *", "-t", "task", "-n", DEEP], "-n/--notes"),
    ],
    ids=["job-args", "job-notes", "broadcast-args", "schedule-args", "schedule-notes"],
)
def test_deeply_nested_json_is_one_line_and_exit_2(
    command: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused before connecting: this DSN would fail with exit code 1 if it were tried.
    assert main([*command, "--dsn", "host=127.0.0.1 port=1 connect_timeout=1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"minion-daemon: {option} is nested too deeply")
    assert error.count("\n") == 1
