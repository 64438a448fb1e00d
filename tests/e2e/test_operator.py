"""The operator's surface: a daemon after a kill -9, the crash-loop exit code, the CLI finding
the private cluster, and the README's snippets run as written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.cluster import alive, postmaster_pid, private_state_dir
from helpers.daemon import DEFAULT_METRICS_PORT, TESTS, Daemon, add_distribution, free_port
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.embedded_pg import EmbeddedPostgres

ROOT = TESTS.parent
README = ROOT / "README.md"
#: Where the venv's console scripts are, for the README's commands as a shell runs them.
BIN = Path(sys.executable).parent


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    points = {name: f"helpers.worker_tasks:{name}" for name in ("add", "sleep")}
    (tmp_path / "tasks").mkdir()
    return add_distribution(tmp_path / "tasks", "operator-test-tasks", points)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with private_state_dir() as state:
        yield state


def _environment(task_path: Path, **extra: str) -> dict[str, str]:
    """No database anywhere: no $MINION_DAEMON_DSN (the config files name none either)."""
    environment = {k: v for k, v in os.environ.items() if k != "MINION_DAEMON_DSN"}
    environment["PATH"] = f"{BIN}:{environment.get('PATH', '')}"
    environment["PYTHONPATH"] = f"{task_path}:{TESTS}"
    return environment | extra


@contextlib.contextmanager
def _private_daemon(
    state: Path, task_path: Path, log: Path, metrics: str, **environ: str
) -> Iterator[subprocess.Popen[str]]:
    """``minion-daemon run --state-dir STATE`` with no database given; killed if left running."""
    config = log.with_suffix(".yaml")
    settings = {
        "workers": {"processes": 1, "dequeue_timeout": 1, "heartbeat_interval": 1},
        "shutdown": {"graceful_timeout": 5},
        "metrics": {"listen": metrics},
        "admin": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    command = ["minion-daemon", "run", "-c", str(config), "--state-dir", str(state)]
    with log.open("w", encoding="utf-8") as handle:
        daemon = subprocess.Popen(
            command, env=_environment(task_path, **environ), stderr=handle, text=True
        )
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(30)


def _started(log: Path) -> dict[str, Any] | None:
    for line in log.read_text(encoding="utf-8").splitlines():
        if '"supervisor.started"' in line:
            return dict(json.loads(line))
    return None


def _metrics_dirs(runtime: Path) -> set[Path]:
    return set(runtime.glob("minion-daemon-metrics-*"))


def _kill_orphans(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow(seconds=15)
def test_after_a_kill_9_the_next_daemon_stops_the_orphaned_cluster_and_old_metrics_files(
    state_dir: Path, task_path: Path, tmp_path: Path, dsn: str
) -> None:
    """The killed supervisor's worker still runs a job (its TERM waits for it); the next
    daemon adopts the cluster and stops it when it exits, as its own. Of the two metrics
    directories in RUNTIME_DIRECTORY it removes the dead supervisor's, not a live one's."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    live_config = tmp_path / "live.yaml"
    live_config.write_text(
        yaml.safe_dump(
            {
                "postgres": {"dsn": dsn},
                "metrics": {"listen": f"127.0.0.1:{free_port()}"},
                "admin": {"enabled": False},
                "workers": {"processes": 0},
            }
        ),
        encoding="utf-8",
    )
    live = subprocess.Popen(
        ["minion-daemon", "run", "-c", str(live_config)],
        env=_environment(task_path, RUNTIME_DIRECTORY=str(runtime)),
        stderr=subprocess.DEVNULL,
    )
    orphans: list[int] = []
    try:
        live_dir = wait_until(lambda: _metrics_dirs(runtime), 30, "the live daemon's metrics dir")
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        metrics = f"127.0.0.1:{free_port()}"
        with _private_daemon(
            state_dir, task_path, first_log, metrics, RUNTIME_DIRECTORY=str(runtime)
        ) as first:
            wait_until(lambda: _metrics_dirs(runtime) - live_dir, 60, "the first daemon's dir")
            minion = Minion(PgBackend(EmbeddedPostgres(state_dir).dsn, min_size=0))
            try:
                job_id = minion.enqueue("sleep", [60])
                wait_until(lambda: minion.job(job_id).info["state"] == "active", 60, "the job")
                orphans = [w["pid"] for w in minion.backend.list_workers(0, 10)["workers"]]
            finally:
                minion.close()
            first.kill()
            first.wait(10)
        with _private_daemon(
            state_dir, task_path, second_log, metrics, RUNTIME_DIRECTORY=str(runtime)
        ) as second:
            wait_until(lambda: _started(second_log), 60, "the second daemon to start")
            assert live_dir <= _metrics_dirs(runtime)
            assert len(_metrics_dirs(runtime)) == 2  # the live one's and the second's
            postmaster = postmaster_pid(state_dir / "pgdata")
            assert postmaster is not None
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0
        wait_until(lambda: not alive(postmaster), 10, "the adopted cluster to stop")
        assert _metrics_dirs(runtime) == live_dir
    finally:
        _kill_orphans(orphans)
        live.terminate()
        live.wait(30)


def test_a_crash_loop_exits_3(tmp_path: Path, dsn: str) -> None:
    """A task whose entry point names a function that does not exist: no worker can boot."""
    (tmp_path / "broken").mkdir()
    points = {"broken": "helpers.worker_tasks:absent"}
    task_path = add_distribution(tmp_path / "broken", "broken-test-tasks", points)
    config = tmp_path / "config.yaml"
    metrics = f"127.0.0.1:{free_port()}"
    settings = {
        "postgres": {"dsn": dsn},
        "metrics": {"listen": metrics},
        "admin": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    code, errors = Daemon(config, task_path, metrics).finish()
    assert code == 3, errors
    assert "supervisor.crash_loop" in errors


@pytest.mark.slow(seconds=30)
def test_the_cli_finds_the_running_private_cluster_and_says_how_to_give_a_dsn_without_one(
    state_dir: Path, task_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    environment = _environment(task_path, MINION_DAEMON_STATE_DIR=str(state_dir))

    def command(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["minion-daemon", *arguments],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    with _private_daemon(state_dir, task_path, log, f"127.0.0.1:{free_port()}") as daemon:
        started = wait_until(lambda: _started(log), 60, "the daemon to start")
        assert started["dsn"] == EmbeddedPostgres(state_dir).dsn
        enqueued = command("job", "-e", "add", "-a", "[2, 3]")
        assert enqueued.returncode == 0, enqueued.stderr
        job_id = enqueued.stdout.strip()
        shown = wait_until(
            lambda: "finished" in (out := command("job", job_id).stdout) and out, 30, "the job"
        )
        assert "added: 5" in shown
        migrated = command("migrate", "--state-dir", str(state_dir))
        assert (migrated.returncode, migrated.stdout) == (0, "25\n"), migrated.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    for arguments in (["job"], ["schedule", "nightly"], ["migrate"], ["worker"]):
        refused = command(*arguments)
        assert refused.returncode == 2, (arguments, refused.stderr)
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "no database given" in refused.stderr
        assert "--dsn" in refused.stderr


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    # The section's own text, up to its first subsection.
    match = re.search(rf"^## {title}\n(.*?)(?=^##)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


@pytest.mark.slow(seconds=15)
@pytest.mark.xdist_group(DEFAULT_METRICS_PORT)  # the Quickstart's daemon: default address
def test_the_readme_quickstart_runs_as_written(state_dir: Path, tmp_path: Path) -> None:
    """Its first block installs and starts the daemon; the second, in another terminal, is
    run as it is. The packages are the venv's, the example tasks on PYTHONPATH instead of
    installed; MINION_DAEMON_STATE_DIR points both blocks at a temporary state directory."""
    start, commands = _blocks(_section("Quickstart"), "sh")
    install, run = start.splitlines()
    assert install.startswith("pip install . ./examples/tasks")
    examples = ROOT / "examples" / "tasks"
    project = tomllib.loads((examples / "pyproject.toml").read_text(encoding="utf-8"))
    points = project["project"]["entry-points"]["minion_daemon.tasks"]
    (tmp_path / "examples").mkdir()
    tasks = add_distribution(tmp_path / "examples", "minion-daemon-example-tasks", points)
    environment = _environment(tasks, MINION_DAEMON_STATE_DIR=str(state_dir))
    environment["PYTHONPATH"] = f"{tasks}:{examples}"
    log = tmp_path / "daemon.log"
    with log.open("w", encoding="utf-8") as handle:
        daemon = subprocess.Popen(["bash", "-c", f"exec {run}"], env=environment, stderr=handle)
    try:
        started = wait_until(lambda: _started(log), 60, "the daemon to start")
        shell = subprocess.run(
            ["bash", "-e", "-x", "-c", commands],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert shell.returncode == 0, shell.stderr
        assert "echo" in shell.stdout
        minion = Minion(PgBackend(started["dsn"], min_size=0))
        try:
            info = minion.result(1, timeout=30)
        finally:
            minion.close()
        assert info is not None
        assert (info["state"], info["result"]) == ("finished", ["hello", 42])
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text(encoding="utf-8")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(30)


def test_the_readme_python_snippet_runs_as_written(
    make_database: Any, tmp_path: Path
) -> None:
    """The snippet's database is made as the README says (a fresh, empty one here, under a
    name of the test's own): the snippet does the rest."""
    tasks = _section("Tasks")
    (snippet,) = _blocks(tasks, "python")
    readme_dsn = "postgresql://postgres@127.0.0.1/minion"
    assert f'Minion("{readme_dsn}")' in snippet
    assert "createdb -h 127.0.0.1 -U postgres minion" in tasks
    program = snippet.replace(readme_dsn, make_database(None))
    (tmp_path / "snippet.py").write_text(program, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "snippet.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "{'width': 640}\n"
