"""`minion-daemon migrate`: where the DSN comes from, what it prints, how it fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from minion_daemon.cli import main

MakeDatabase = Callable[[int | None], str]


def test_migrate_prints_the_resulting_version(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(None)
    assert main(["migrate", "--dsn", dsn, "--to", "23"]) == 0
    assert main(["migrate", "--dsn", dsn]) == 0
    assert main(["migrate", "--dsn", dsn, "--to", "0"]) == 0
    assert capsys.readouterr().out == "23\n25\n0\n"


def test_dsn_precedence_flag_then_environment_then_config(
    make_database: MakeDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from_flag, from_env, from_file = make_database(None), make_database(23), make_database(24)
    config = tmp_path / "config.yaml"
    config.write_text(f"postgres:\n  dsn: '{from_file}'\n", encoding="utf-8")
    monkeypatch.setenv("MINION_DAEMON_DSN", from_env)

    assert main(["migrate", "--to", "23", "--dsn", from_flag, "-c", str(config)]) == 0
    assert main(["migrate", "--to", "24", "-c", str(config)]) == 0  # from_env: 23 -> 24
    monkeypatch.delenv("MINION_DAEMON_DSN")
    assert main(["migrate", "--to", "25", "-c", str(config)]) == 0  # from_file: 24 -> 25
    assert capsys.readouterr().out == "23\n24\n25\n"


def test_no_dsn_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("MINION_DAEMON_DSN", raising=False)
    monkeypatch.setenv("MINION_DAEMON_STATE_DIR", str(tmp_path / "no-cluster"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert main(["migrate", "-c", str(empty)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("minion-daemon: no database given, and no daemon runs a private")
    assert "pass --dsn" in error
    assert error.count("\n") == 1


def test_bad_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("postgres:\n  max_schema_version: 99\n", encoding="utf-8")
    assert main(["migrate", "-c", str(config)]) == 2
    expected = "postgres.max_schema_version: expected an integer from 23 to 25"
    assert expected in capsys.readouterr().err


def test_unreachable_database_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=2"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("minion-daemon: migrate: database unavailable:")
    assert "Traceback" not in error


def test_version_newer_than_known_is_a_runtime_error(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--dsn", make_database(None), "--to", "26"]) == 1
    assert "Version 26 has no migration" in capsys.readouterr().err
