"""The private cluster of ``minion-daemon run``: made, served, stopped, reused, adopted, shared."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from helpers.cluster import (
    AS_ROOT,
    alive,
    cluster_processes,
    kill,
    postmaster_pid,
    private_state_dir,
)
from helpers.daemon import DEFAULT_METRICS_PORT
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.embedded_pg import (
    EmbeddedDatabaseError,
    EmbeddedPostgres,
    default_state_dir,
    find_binaries,
)

MakeCluster = Callable[[], EmbeddedPostgres]


@pytest.fixture(scope="module")
def made_cluster() -> Iterator[Path]:
    """A state directory whose cluster was made once, then stopped: initdb is the slow part."""
    with private_state_dir() as state:
        with EmbeddedPostgres(state):
            pass
        yield state


@pytest.fixture
def fresh_state_dir() -> Iterator[Path]:
    """An empty state directory."""
    with private_state_dir() as state:
        yield state


@pytest.fixture
def state_dir(made_cluster: Path) -> Iterator[Path]:
    """A state directory holding a made, stopped cluster of its own."""
    with private_state_dir(made_cluster) as state:
        yield state


@pytest.fixture
def clusters(state_dir: Path) -> Iterator[MakeCluster]:
    """Make EmbeddedPostgres objects on ``state_dir``; every one is stopped after the test."""
    objects: list[EmbeddedPostgres] = []

    def make() -> EmbeddedPostgres:
        objects.append(EmbeddedPostgres(state_dir))
        return objects[-1]

    yield make
    for cluster in reversed(objects):
        cluster.stop()


def _assert_ended(processes: set[int], postmaster: int | None) -> None:
    """The server's children are gone, and its postmaster is too, or about to be."""
    assert postmaster is not None
    assert not any(alive(pid) for pid in processes - {postmaster})
    # pg_ctl stop -w returns when postmaster.pid is gone, which the postmaster removes as it exits.
    wait_until(lambda: not alive(postmaster), 5, "the postmaster to exit")


def _start_in_a_daemon_that_dies(state_dir: Path) -> str:
    """Start the cluster from another process that then ends without stopping it."""
    program = (
        "import sys, pathlib; from minion_daemon.embedded_pg import EmbeddedPostgres;"
        " print(EmbeddedPostgres(pathlib.Path(sys.argv[1])).start())"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(state_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def _rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as connection:
        return connection.execute("SELECT id FROM things ORDER BY id").fetchall()


def _insert(dsn: str, *ids: int) -> None:
    with psycopg.connect(dsn) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS things (id int)")
        for id_ in ids:
            connection.execute("INSERT INTO things VALUES (%s)", (id_,))


def test_the_first_start_makes_a_cluster_serving_on_the_socket_only_and_stop_ends_it(
    fresh_state_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pgdata = fresh_state_dir / "pgdata"
    with EmbeddedPostgres(fresh_state_dir) as cluster:
        assert capfd.readouterr() == ("", "")  # initdb's and pg_ctl's chatter was captured
        dsn = cluster.start()  # again: a no-op
        assert dsn == cluster.dsn
        _insert(dsn, 1)
        assert _rows(dsn) == [(1,)]
        with psycopg.connect(dsn) as connection:
            query = "SELECT current_database(), current_setting('listen_addresses')"
            assert connection.execute(query).fetchone() == ("minion", "")
        assert stat.S_IMODE((fresh_state_dir / "run").stat().st_mode) == 0o700
        if AS_ROOT:
            assert pgdata.stat().st_uid == pwd.getpwnam("postgres").pw_uid
        postmaster, processes = postmaster_pid(pgdata), cluster_processes(pgdata)
        assert postmaster in processes

    cluster.stop()  # again: a no-op

    assert not (pgdata / "postmaster.pid").exists()
    _assert_ended(processes, postmaster)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3)


def test_a_second_start_reuses_the_cluster_and_its_data(
    clusters: MakeCluster, state_dir: Path
) -> None:
    with clusters() as first:
        _insert(first.dsn, 1)
    before = (state_dir / "pgdata" / "PG_VERSION").stat()

    second = clusters()
    assert _rows(second.start()) == [(1,)]

    after = (state_dir / "pgdata" / "PG_VERSION").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # no initdb


def test_a_cluster_left_running_by_a_dead_daemon_is_adopted_and_stopped_on_exit(
    clusters: MakeCluster, state_dir: Path
) -> None:
    dsn = _start_in_a_daemon_that_dies(state_dir)
    postmaster = postmaster_pid(state_dir / "pgdata")
    assert postmaster is not None
    assert alive(postmaster)
    _insert(dsn, 7)

    cluster = clusters()
    assert cluster.start() == dsn
    assert postmaster_pid(state_dir / "pgdata") == postmaster  # used as it is, not restarted
    assert _rows(dsn) == [(7,)]
    processes = cluster_processes(state_dir / "pgdata")

    cluster.stop()

    _assert_ended(processes, postmaster)


def test_a_stale_postmaster_pid_does_not_block_start(
    clusters: MakeCluster, state_dir: Path
) -> None:
    dsn = _start_in_a_daemon_that_dies(state_dir)
    _insert(dsn, 3)
    kill(cluster_processes(state_dir / "pgdata"))  # the machine crashed, say
    assert (state_dir / "pgdata" / "postmaster.pid").exists()

    assert _rows(clusters().start()) == [(3,)]


def test_two_users_share_the_cluster_and_the_last_one_stops_it(
    clusters: MakeCluster, state_dir: Path
) -> None:
    first, second = clusters(), clusters()
    assert first.start() == second.start()

    second.stop()
    _insert(first.dsn, 1)  # still running for the first

    first.stop()
    assert not (state_dir / "pgdata" / "postmaster.pid").exists()


def test_a_server_that_fails_to_start_is_reported_with_the_log(
    clusters: MakeCluster, state_dir: Path
) -> None:
    with (state_dir / "pgdata" / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("shared_buffers = 'plenty'\n")

    with pytest.raises(EmbeddedDatabaseError) as caught:
        clusters().start()

    message = str(caught.value)
    assert message.startswith(
        f"pg_ctl start failed (exit status 1) for the embedded database in {state_dir}"
    )
    assert 'invalid value for parameter "shared_buffers"' in message


def test_a_failing_initdb_is_reported_with_its_output(fresh_state_dir: Path) -> None:
    state_dir = fresh_state_dir
    binaries = state_dir.parent / "bin"
    binaries.mkdir()
    _stub(binaries / "initdb", "echo 'initdb: error: the disk is on fire' >&2; exit 1")
    _stub(binaries / "pg_ctl", "exit 3")

    with pytest.raises(EmbeddedDatabaseError) as caught:
        EmbeddedPostgres(state_dir, binaries=binaries).start()

    assert str(caught.value) == (
        f"initdb failed (exit status 1) for the embedded database in {state_dir}"
        "\n  initdb: error: the disk is on fire"
    )


def test_an_unusable_state_dir_fails_clearly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    if AS_ROOT:
        # An existing directory of root's is left to root, and PostgreSQL refuses to run as root.
        state.mkdir()
        with pytest.raises(EmbeddedDatabaseError) as caught:
            EmbeddedPostgres(state).start()
        message = str(caught.value)
        assert message.startswith("the embedded database cannot run as root: chown")
        assert str(state) in message
        assert "--dsn" in message
        assert "\n" not in message
        assert not (state / "pgdata").exists()
    else:
        state.mkdir(mode=0o500)
        with pytest.raises(EmbeddedDatabaseError, match=f"cannot use the state directory {state}"):
            EmbeddedPostgres(state).start()


def test_a_socket_path_over_the_limit_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    state = tmp_path / ("s" * 100)
    with pytest.raises(EmbeddedDatabaseError, match="use a shorter state directory") as caught:
        EmbeddedPostgres(state).start()
    assert str(state / "run" / ".s.PGSQL.5432") in str(caught.value)
    assert not state.exists()


def _stub(path: Path, script: str = "exit 0") -> None:
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(0o755)


def _fake_installation(root: Path, version: str, names: tuple[str, ...]) -> Path:
    directory = root / version / "bin"
    directory.mkdir(parents=True)
    for name in names:
        _stub(directory / name)
    return directory


def test_find_binaries_takes_the_highest_complete_version(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "10"):
        _fake_installation(tmp_path, version, ("initdb", "pg_ctl"))
    _fake_installation(tmp_path, "17", ("initdb",))  # no pg_ctl: not a candidate
    (tmp_path / "common" / "bin").mkdir(parents=True)

    assert find_binaries(search_path="", roots=[tmp_path]) == tmp_path / "16" / "bin"


def test_find_binaries_prefers_path(tmp_path: Path) -> None:
    on_path = _fake_installation(tmp_path / "opt", "pg", ("initdb", "pg_ctl"))
    _fake_installation(tmp_path / "lib", "99", ("initdb", "pg_ctl"))

    assert find_binaries(search_path=str(on_path), roots=[tmp_path / "lib"]) == on_path


def test_find_binaries_without_any_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedDatabaseError) as caught:
        find_binaries(search_path="", roots=[tmp_path])

    message = str(caught.value)
    assert message.startswith("no PostgreSQL server binaries (initdb, pg_ctl) found on PATH")
    assert f"{tmp_path}/*/bin" in message
    assert "apt-get install postgresql" in message
    assert "--dsn" in message
    assert "MINION_DAEMON_DSN" in message
    assert "\n" not in message


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_dir() == Path("/var/lib/minion-daemon")

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "minion-daemon"

    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "share" / "minion-daemon"


@pytest.mark.xdist_group(DEFAULT_METRICS_PORT)  # no metrics section: the default address
def test_minion_daemon_run_with_no_dsn_starts_the_cluster_serves_jobs_and_stops_it(
    fresh_state_dir: Path, task_path: Path
) -> None:
    """The README's run command: no --dsn, no MINION_DAEMON_DSN, no postgres.dsn. As root, a
    state directory that does not exist yet is made for the postgres account."""
    if AS_ROOT:
        fresh_state_dir.rmdir()
    config = task_path / "config.yaml"
    config.write_text("workers: {processes: 1, dequeue_timeout: 1}\n", encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "MINION_DAEMON_DSN"}
    environment["PYTHONPATH"] = f"{task_path}:{Path(__file__).resolve().parents[1]}"
    command = [sys.executable, "-m", "minion_daemon", "run", "-c", str(config)]
    daemon = subprocess.Popen(
        [*command, "--state-dir", str(fresh_state_dir)],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        dsn = EmbeddedPostgres(fresh_state_dir).dsn

        def workers() -> int:
            with contextlib.suppress(psycopg.Error), psycopg.connect(dsn) as conn:
                return int(conn.execute("SELECT count(*) FROM minion_workers").fetchone()[0])
            return 0

        wait_until(workers, 60, "a worker registered in the embedded database")
        minion = Minion(PgBackend(dsn, min_size=0))
        try:
            job_id = minion.enqueue("add", [2, 3])
            wait_until(lambda: minion.job(job_id).info["state"] == "finished", 30, "the job")
            assert minion.job(job_id).info["result"] == {"added": 5}
        finally:
            minion.close()
        postmaster = postmaster_pid(fresh_state_dir / "pgdata")
        daemon.send_signal(signal.SIGTERM)
        _, errors = daemon.communicate(timeout=60)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, errors
    assert "embedded_pg.started" in errors
    if AS_ROOT:
        assert fresh_state_dir.stat().st_uid == pwd.getpwnam("postgres").pw_uid
    assert postmaster is not None
    wait_until(lambda: not alive(postmaster), 10, "the cluster to stop with the daemon")
