"""Config files that never end or never open, and a fleet too big for the server, on the real
daemon: refused at once with one line at start and by ``check-config``, kept out on HUP while
the daemon goes on; a pool total over ``max_connections`` is logged with its numbers."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers.daemon import Daemon
from helpers.waiting import wait_until

#: Address space a command may use: ample for the daemon, far below an endless file's content.
MEMORY_CAP = 1024**3


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _special(tmp_path: Path, kind: str) -> Path:
    """A config path that is not a usable file: a FIFO nobody writes (opening it for reading
    blocks), /dev/zero (endless), or a sparse 4 GiB regular file."""
    path = tmp_path / f"{kind}.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        with path.open("wb") as file:
            file.truncate(4 * 1024**3)
    return path


def _command(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``minion-daemon ARGUMENTS`` under the memory cap; killed after 30 s."""
    return subprocess.run(
        [sys.executable, "-m", "minion_daemon", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=_capped,
        check=False,
    )


EXPECTED = {"fifo": "not a regular file", "zero": "not a regular file", "huge": "over 1 MiB"}


@pytest.mark.parametrize("kind", ["fifo", "zero", "huge"])
@pytest.mark.parametrize("command", ["check-config", "run -c"])
def test_an_unusable_config_file_is_one_line_and_exit_2(
    tmp_path: Path, command: str, kind: str
) -> None:
    path = _special(tmp_path, kind)
    ended = _command(*command.split(), str(path))
    assert ended.returncode == 2, ended.stderr
    assert ended.stderr.startswith(f"minion-daemon: {path}: {EXPECTED[kind]}")
    assert ended.stderr.count("\n") == 1


def _events(daemon: Daemon) -> list[dict[str, Any]]:
    assert daemon.log is not None
    return [json.loads(line) for line in daemon.log.read_text().splitlines() if line]


def _named(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    return [line for line in _events(daemon) if line["event"] == event]


def _wait_for_reload_failures(daemon: Daemon, count: int) -> None:
    wait_until(
        lambda: len(_named(daemon, "config.reload_failed")) == count, 20, f"{count} failed reloads"
    )


def test_hup_with_a_fifo_or_an_endless_config_keeps_the_old_one(start: Any) -> None:
    daemon, config = start(logging={"format": "json"})
    wait_until(lambda: len(_named(daemon, "worker.booted")) == 2, 30, "two booted workers")
    for failures, replacement in enumerate(("fifo", "zero"), start=1):
        _special(config.parent, replacement).replace(config)
        daemon.signal(signal.SIGHUP)
        _wait_for_reload_failures(daemon, failures)
    failures = _named(daemon, "config.reload_failed")
    assert [f["consequence"] for f in failures] == ["old config kept"] * 2
    assert all("not a regular file" in f["error"] for f in failures)
    daemon.signal(signal.SIGTERM)
    code, _ = daemon.finish(timeout=30)
    assert code == 0
    assert not _named(daemon, TOO_MANY)
    assert len(_named(daemon, "worker.spawned")) == 2  # the workers were never replaced


#: The warning of a daemon whose pools could exceed the server's max_connections.
TOO_MANY = "supervisor.connections_exceed_server"


def _server_max_connections(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        assert row is not None
        return int(row[0])


def test_pools_over_max_connections_warn_and_ttin_ttou_are_logged(start: Any, dsn: str) -> None:
    limit = _server_max_connections(dsn)
    # Two processes whose pools could take every connection: only their first connections
    # are ever opened (pool_min_size 1), so the server is in no danger.
    pool = min(limit // 2 + 1, 100)
    daemon, _ = start(logging={"format": "json"}, postgres={"dsn": dsn, "pool_max_size": pool})
    warning = wait_until(lambda: _named(daemon, TOO_MANY), 30, "the warning")[0]
    assert warning["level"] == "warning"
    assert warning["max_connections"] == limit
    assert warning["processes"] == 2
    assert warning["needed"] == 2 * (pool + 1) + 2  # pools, LISTENs, supervisor, metrics
    usable = warning["max_connections"] - warning["reserved"]
    assert warning["needed"] > usable - warning["kept_for_others"]
    assert "postgres.pool_max_size" in warning["fix"]
    daemon.signal(signal.SIGTTIN)
    wait_until(lambda: _named(daemon, "supervisor.scaled"), 20, "the TTIN line")
    daemon.signal(signal.SIGTTOU)
    wait_until(lambda: len(_named(daemon, "supervisor.scaled")) == 2, 20, "the TTOU line")
    scaled = _named(daemon, "supervisor.scaled")
    assert [(s["signal"], s["processes"]) for s in scaled] == [("SIGTTIN", 3), ("SIGTTOU", 2)]
    warnings = _named(daemon, TOO_MANY)
    assert [w["processes"] for w in warnings] == [2, 3]
    daemon.signal(signal.SIGTERM)
    assert daemon.finish(timeout=30)[0] == 0
