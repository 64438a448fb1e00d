"""Jobs no live worker can run: workers list their tasks, ``job -e`` warns about a task no
live worker offers, and the metrics report such jobs (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from helpers.sql import execute
from prometheus_client.parser import text_string_to_metric_families

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.cli import main
from minion_daemon.metrics.collector import DatabaseCollector
from minion_daemon.metrics.server import metrics_app

#: The status of a Perl worker (Minion::Worker's defaults): it lists no tasks.
PERL_STATUS = {
    "command_interval": 10,
    "dequeue_timeout": 5,
    "heartbeat_interval": 300,
    "jobs": 4,
    "queues": ["default"],
    "performed": 0,
    "repair_interval": 21600,
    "spare": 1,
    "spare_min_priority": 1,
}

Enqueue = Callable[[str], tuple[int, str, str]]


def _noop(_: Any) -> None:
    """A task body: these tests never run it."""


def _register(backend: PgBackend, status: dict[str, Any]) -> int:
    return backend.register_worker(None, {"status": status})


def _python_worker(backend: PgBackend, *tasks: str) -> int:
    return _register(backend, {**PERL_STATUS, "type": "Python", "tasks": sorted(tasks)})


def test_a_worker_lists_its_tasks_sorted_in_its_status(minion: Minion) -> None:
    for name in ("zeta", "alpha", "mid"):
        minion.add_task(name, _noop)
    worker = minion.worker()
    worker_id = worker.register()
    [info] = minion.backend.list_workers(0, 1, {"ids": [worker_id]})["workers"]
    assert info["status"]["tasks"] == ["alpha", "mid", "zeta"]


@pytest.fixture
def enqueue(dsn: str, capsys: pytest.CaptureFixture[str]) -> Enqueue:
    """``enqueue(task)``: ``minion-daemon job -e task``; (exit code, stdout, stderr)."""

    def run(task: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["job", "--dsn", dsn, "-e", task])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_enqueueing_a_task_no_python_worker_offers_warns(
    enqueue: Enqueue, backend: PgBackend
) -> None:
    _python_worker(backend, "add", "sleep")
    _python_worker(backend, "other")
    code, out, err = enqueue("nosuchtask")
    assert code == 0
    job_id = int(out)
    assert backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["state"] == "inactive"
    assert err.count("\n") == 1, err
    assert "no live worker offers task nosuchtask" in err, err


def test_enqueueing_a_task_a_worker_offers_does_not_warn(
    enqueue: Enqueue, backend: PgBackend
) -> None:
    _python_worker(backend, "add", "sleep")
    assert enqueue("sleep")[2] == ""


def test_a_live_perl_worker_may_offer_any_task_so_no_warning(
    enqueue: Enqueue, backend: PgBackend
) -> None:
    _python_worker(backend, "add")
    _register(backend, PERL_STATUS)
    code, out, err = enqueue("nosuchtask")
    assert (code, err) == (0, "")
    assert int(out) > 0


def test_with_no_worker_live_enqueueing_warns(
    enqueue: Enqueue, backend: PgBackend, dsn: str
) -> None:
    """A worker whose heartbeat is older than two of its heartbeat intervals is not live,
    Perl's or ours; with none live, any task is unoffered."""
    _register(backend, PERL_STATUS)
    _python_worker(backend, "nosuchtask")
    execute(dsn, "UPDATE minion_workers SET notified = NOW() - INTERVAL '601 seconds'")
    code, _, err = enqueue("nosuchtask")
    assert code == 0
    assert "no live worker offers task nosuchtask" in err, err


def _scrape(backend: PgBackend, directory: Path) -> dict[str, dict[tuple[str, ...], float]]:
    app = metrics_app(DatabaseCollector(backend.observe, cache_seconds=0), directory)
    environ: dict[str, object] = {"PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    body = b"".join(app(environ, lambda *_: None)).decode()
    return {
        family.name: {tuple(s.labels.values()): s.value for s in family.samples}
        for family in text_string_to_metric_families(body)
    }


def test_the_metrics_report_runnable_jobs_of_tasks_no_live_worker_offers(
    backend: PgBackend, tmp_path: Path
) -> None:
    _python_worker(backend, "add")
    for _ in range(2):
        backend.enqueue("nosuchtask")
    backend.enqueue("nosuchtask", [], {"delay": 3600})  # not runnable yet
    backend.enqueue("add")
    backend.enqueue("other", [], {"queue": "elsewhere"})
    metrics = _scrape(backend, tmp_path)
    assert metrics["minion_jobs_unrunnable"] == {("nosuchtask",): 2, ("other",): 1}
    assert metrics["minion_workers_tasks_unknown"] == {(): 0}


def test_with_a_live_perl_worker_no_job_counts_as_unrunnable(
    backend: PgBackend, tmp_path: Path
) -> None:
    _python_worker(backend, "add")
    _register(backend, PERL_STATUS)
    backend.enqueue("nosuchtask")
    metrics = _scrape(backend, tmp_path)
    assert metrics["minion_jobs_unrunnable"] == {}
    assert metrics["minion_workers_tasks_unknown"] == {(): 1}
