"""The admin UI served for real: ``minion-daemon admin`` alone, and the daemon's own admin
process, supervised like the metrics process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.daemon import Daemons, free_port, quick_settings, running_daemons
from helpers.waiting import wait_until

from minion_daemon.admin.auth import verify_password
from minion_daemon.backend import PgBackend

COMMAND = [sys.executable, "-m", "minion_daemon"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback only
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def _admin(*arguments: str, stdin: str = "", **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MINION_DAEMON_ADMIN_TOKEN"} | environ
    return subprocess.run(
        [*COMMAND, "admin", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_hash_password_prints_a_hash_of_the_password_on_stdin() -> None:
    done = _admin("--hash-password", stdin="s3cret\n")
    assert done.returncode == 0, done.stderr
    assert verify_password("s3cret", done.stdout.strip())
    empty = _admin("--hash-password", stdin="\n")
    assert empty.returncode == 2
    assert empty.stderr.count("\n") == 1
    assert "empty password" in empty.stderr


def test_a_non_loopback_address_without_credentials_is_refused_in_one_line(dsn: str) -> None:
    done = _admin("--dsn", dsn, "--listen", f"0.0.0.0:{free_port()}")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "is not a loopback address" in done.stderr
    assert "admin.password_hash" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_password_hash_that_is_not_one_is_refused(dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("admin: {password_hash: hunter2}\n", encoding="utf-8")
    done = _admin("--dsn", dsn, "-c", str(config))
    assert done.returncode == 2
    assert "admin.password_hash: not a $scrypt$" in done.stderr
    assert "hunter2" not in done.stderr


@pytest.fixture
def standalone() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(dsn: str, *arguments: str) -> tuple[subprocess.Popen[str], str]:
        address = f"127.0.0.1:{free_port()}"
        process = subprocess.Popen(
            [*COMMAND, "admin", "--dsn", dsn, "--listen", address, *arguments],
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        url = f"http://{address}"
        wait_until(lambda: _answers(f"{url}/stats") or process.poll() is not None, 30, "admin")
        assert process.poll() is None, process.communicate()[1]
        return process, url

    yield start
    for process in started:
        process.terminate()
        process.communicate(timeout=20)


def test_minion_daemon_admin_serves_a_perl_schema_without_migrating_it(
    standalone: Callable[..., tuple[subprocess.Popen[str], str]],
    make_database: Callable[[int | None], str],
) -> None:
    dsn = make_database(23)
    backend = PgBackend(dsn, pooled=False, auto_migrate=False)
    job_id = backend.enqueue("perl_task", ["<b>"], {"queue": "perl"})
    _, url = standalone(dsn)
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/workers", "/locks", "/schedules", "/queues"):
        assert _get(f"{url}{path}")[0] == 200, path
    assert "perl_task" in _get(f"{url}/jobs")[1]
    assert "&lt;b&gt;" in _get(f"{url}/jobs/{job_id}")[1]
    assert backend.schema_version == 23
    assert json.loads(_get(f"{url}/stats")[1])["inactive_jobs"] == 1
    backend.close()


@pytest.fixture
def daemons(tmp_path: Path, task_path: Path, dsn: str) -> Iterator[Daemons]:
    def defaults() -> dict[str, dict[str, Any]]:
        return quick_settings() | {
            "postgres": {"dsn": dsn},
            "metrics": {"enabled": False},
            "workers": quick_settings()["workers"] | {"processes": 1},
        }

    with running_daemons(tmp_path, task_path, defaults) as started:
        yield started


def _admin_pid(log: Path) -> int | None:
    for line in reversed(log.read_text(encoding="utf-8").splitlines()):
        if '"admin.spawned"' in line:
            return int(json.loads(line)["admin_pid"])
    return None


def test_the_daemon_serves_the_admin_ui_and_restarts_it_when_it_dies(
    daemons: Daemons, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    daemon = daemons.start({"admin": {"listen": address}, "logging": {"format": "json"}})
    url = f"http://{address}"
    wait_until(lambda: "busy workers" in _get(f"{url}/")[1], 30, "the admin UI", (OSError,))
    wait_until(lambda: json.loads(_get(f"{url}/stats")[1])["workers"] == 1, 30, "a worker")
    assert daemon.log is not None
    first = wait_until(lambda: _admin_pid(daemon.log), 10, "admin.spawned")  # type: ignore[arg-type]
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: _admin_pid(daemon.log) not in (None, first), 10, "a new admin process")  # type: ignore[arg-type]
    wait_until(lambda: _answers(f"{url}/stats"), 10, "the admin UI again", (OSError,))
    assert '"admin.exited"' in daemon.log.read_text(encoding="utf-8")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert not _answers(f"{url}/stats")


def test_the_daemon_refuses_a_public_admin_address_without_credentials(daemons: Daemons) -> None:
    daemon = daemons.start({"admin": {"listen": f"0.0.0.0:{free_port()}"}})
    code, errors = daemon.finish()
    assert code == 2
    assert "admin.listen" in errors
    assert "is not a loopback address" in errors
    assert "Traceback" not in errors


def test_admin_enabled_false_serves_nothing(daemons: Daemons) -> None:
    address = f"127.0.0.1:{free_port()}"
    daemon = daemons.start({"admin": {"enabled": False, "listen": address}})
    wait_until(lambda: daemon.log and "worker.spawned" in daemon.log.read_text(), 30, "a worker")
    assert not _answers(f"http://{address}/stats")


def test_hup_applies_the_admin_credentials_at_once_and_names_a_new_address(
    daemons: Daemons, password_hash: str
) -> None:
    """A reload starts the admin process again, at once, with the new password and timeout;
    the address, bound at start, keeps serving and is named as needing a restart."""
    address = f"127.0.0.1:{free_port()}"
    daemon = daemons.start({"admin": {"listen": address}, "logging": {"format": "json"}})
    url = f"http://{address}"
    wait_until(lambda: _answers(f"{url}/stats"), 30, "the admin UI", (OSError,))
    assert _get(f"{url}/login")[0] == 404  # read-only: no login
    assert daemon.log is not None
    log = daemon.log
    first = wait_until(lambda: _admin_pid(log), 10, "admin.spawned")
    settings = yaml.safe_load(daemon.config.read_text(encoding="utf-8"))
    moved = f"127.0.0.1:{free_port()}"
    settings["admin"] |= {"password_hash": password_hash, "query_timeout": 5, "listen": moved}
    daemon.config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    line = wait_until(lambda: _logged(log, "config.reloaded"), 30, "the reload's log line")
    assert line["needs_restart"] == ["admin.listen"]
    wait_until(lambda: _admin_pid(log) not in (None, first), 10, "a new admin process")
    wait_until(lambda: _get(f"{url}/login")[0] == 200, 10, "the login page", (OSError,))
    assert '"admin.exited"' not in log.read_text(encoding="utf-8")  # replaced, not died
    assert password_hash not in log.read_text(encoding="utf-8")
    assert not _answers(f"http://{moved}/stats")


def test_hup_refuses_a_password_hash_that_is_not_one_and_keeps_serving(
    daemons: Daemons,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    daemon = daemons.start({"admin": {"listen": address}, "logging": {"format": "json"}})
    url = f"http://{address}"
    wait_until(lambda: _answers(f"{url}/stats"), 30, "the admin UI", (OSError,))
    settings = yaml.safe_load(daemon.config.read_text(encoding="utf-8"))
    settings["admin"]["password_hash"] = "hunter2"
    daemon.config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    assert daemon.log is not None
    log = daemon.log
    line = wait_until(lambda: _logged(log, "config.reload_failed"), 30, "the refused reload")
    assert "admin.password_hash" in line["error"]
    assert _logged(log, "config.reloaded") is None
    assert _get(f"{url}/login")[0] == 404  # still read-only, as before
    assert _answers(f"{url}/stats")


def _logged(log: Path, event: str) -> dict[str, Any] | None:
    for line in log.read_text(encoding="utf-8").splitlines():
        if f'"{event}"' in line:
            found: dict[str, Any] = json.loads(line)
            return found
    return None


def test_a_stopped_daemon_worker_finishes_and_the_supervisor_starts_another(
    daemons: Daemons, dsn: str
) -> None:
    """The workers page's Stop (``shutdown``) on a supervised worker: a graceful restart."""
    metrics = {"enabled": True, "listen": f"127.0.0.1:{free_port()}"}
    daemon = daemons.start(
        {"admin": {"enabled": False}, "logging": {"format": "json"}, "metrics": metrics}
    )
    backend = PgBackend(dsn, min_size=0, max_size=2)
    try:

        def workers() -> list[int]:
            return [w["id"] for w in backend.list_workers(0, 10)["workers"]]

        first = wait_until(lambda: workers() or None, 30, "a worker")[0]
        assert backend.broadcast("shutdown", [], [first])
        wait_until(lambda: workers() and first not in workers(), 30, "a new worker in its place")
        assert daemon.process.poll() is None
        assert daemon.log is not None
        assert '"worker.shutdown_requested"' in daemon.log.read_text(encoding="utf-8")
        # A worker told to stop is no crash: its replacement is counted apart, and the
        # MinionWorkersRestarting alert leaves it out.
        restarts = _restarts(daemon.url)
        assert restarts["stopped"] == 1.0
        assert restarts["died"] == 0.0
    finally:
        backend.close()


def _restarts(url: str) -> dict[str, float]:
    status, text = _get(f"{url}/metrics")
    assert status == 200, text
    prefix = 'minion_worker_restarts_total{reason="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }
