"""Scrape the real daemon over HTTP: job counters, backlog, caching, health, errors, promtool."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest
from helpers.daemon import Daemon
from helpers.postgres import throwaway_cluster
from helpers.sql import hasten_retries
from helpers.waiting import wait_until
from prometheus_client.parser import text_string_to_metric_families

from minion_daemon import Minion

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _get(daemon: Daemon, path: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(daemon.url + path, timeout=timeout) as answer:  # noqa: S310
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _scrape(daemon: Daemon) -> Samples:
    status, text = _get(daemon, "/metrics")
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _up(daemon: Daemon) -> Samples:
    """Scrapes once the metrics process answers and both worker processes run their loop."""

    def booted() -> Samples | None:
        try:
            samples = _scrape(daemon)
        except OSError:
            return None
        return samples if _value(samples, "minion_worker_processes", state="booted") == 2 else None

    return wait_until(booted, 30, "the metrics server and two booted workers")


def test_job_counters_and_histograms_follow_the_jobs(start: Any, minion: Minion) -> None:
    daemon, _ = start(metrics={"cache_seconds": 0})
    before = _up(daemon)
    ids = [minion.enqueue("add", [n, n]) for n in range(10)]
    failing = minion.enqueue("add", ["not", "numbers", "at all"], attempts=1)
    wait_until(lambda: minion.stats()["finished_jobs"] >= 10, 30, "ten finished jobs")
    wait_until(lambda: minion.stats()["failed_jobs"] == 1, 30, "the failing job")
    labels = {"task": "add", "queue": "default"}

    def counted() -> Samples | None:
        samples = _scrape(daemon)
        ended = _value(samples, "minion_jobs_processed_total", outcome="failed", **labels)
        return samples if ended == 1 else None

    after = wait_until(counted, 10, "the failure to be counted")
    finished = "minion_jobs_processed_total"
    assert _value(after, finished, outcome="finished", **labels) - _value(
        before, finished, outcome="finished", **labels
    ) == len(ids)
    count = "minion_job_duration_seconds_count"
    assert _value(after, count, **labels) - _value(before, count, **labels) == 11
    assert _value(after, "minion_job_queue_latency_seconds_count", **labels) >= 11
    assert _value(after, "minion_jobs_running", **labels) == 0
    assert _value(after, "minion_jobs", state="finished") >= 10
    assert _value(after, "minion_jobs", state="failed") == 1
    assert _value(after, "minion_recent_jobs", outcome="failed", window="1h") == 1
    assert failing  # recorded above through its counter
    assert _value(after, "minion_worker_listen_healthy") == 1
    assert _value(after, "minion_build_info", version=_version(after), schema_version="25") == 1
    assert _value(after, "minion_repair_last_run_timestamp_seconds") > 0
    daemon.signal(signal.SIGTERM)
    assert daemon.finish()[0] == 0


def _version(samples: Samples) -> str:
    [labels] = [dict(key[1]) for key in samples if key[0] == "minion_build_info"]
    return labels["version"]


def test_backlog_gauges_follow_enqueues(start: Any, minion: Minion) -> None:
    daemon, _ = start(metrics={"cache_seconds": 0.2})
    _up(daemon)
    for _ in range(3):
        minion.enqueue("nobody_runs_this", queue="backlog_test")
    labels = {"queue": "backlog_test", "task": "nobody_runs_this"}
    samples = wait_until(
        lambda: (s := _scrape(daemon)) and _value(s, "minion_backlog_jobs", **labels) == 3 and s,
        10,
        "three jobs in the backlog gauge",
    )
    assert _value(samples, "minion_backlog_oldest_age_seconds", **labels) >= 0
    minion.enqueue("nobody_runs_this", queue="backlog_test")
    wait_until(lambda: _value(_scrape(daemon), "minion_backlog_jobs", **labels) == 4, 10, "four")


def test_a_burst_of_scrapes_in_the_cache_window_runs_one_query_round(start: Any) -> None:
    daemon, _ = start(metrics={"cache_seconds": 60})
    first = _up(daemon)
    rounds = [_value(_scrape(daemon), "minion_scrape_rounds_total") for _ in range(20)]
    assert set(rounds) == {_value(first, "minion_scrape_rounds_total")}


def test_health_endpoints(start: Any) -> None:
    daemon, _ = start()
    _up(daemon)
    assert _get(daemon, "/healthz")[0] == 200
    status, text = _get(daemon, "/readyz")
    assert (status, text) == (200, "ok: database reachable, 2 worker processes up\n")


def test_a_slow_database_makes_a_scrape_report_the_error_not_hang(start: Any, dsn: str) -> None:
    daemon, _ = start(metrics={"cache_seconds": 0, "query_timeout": 0.5})
    assert _value(_up(daemon), "minion_scrape_error") == 0
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE minion_jobs IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        samples = _scrape(daemon)
        took = time.monotonic() - began
        assert _value(samples, "minion_scrape_error") == 1
        assert _value(samples, "minion_database_up") == 1, "slow, but reachable"
        assert took < 5, f"the scrape took {took:.1f} s"
    assert _value(_scrape(daemon), "minion_scrape_error") == 0


@pytest.mark.slow
def test_with_the_database_stopped_a_scrape_answers_and_reports_it(
    start: Any,
) -> None:
    server = throwaway_cluster()
    if server is None:
        pytest.fail("this test needs initdb and pg_ctl (Debian's postgresql package)")
    try:
        daemon, _ = start(postgres={"dsn": server.dsn("postgres")}, metrics={"cache_seconds": 0})
        assert _value(_up(daemon), "minion_database_up") == 1
        server.stop()
        began = time.monotonic()
        samples = _scrape(daemon)
        assert time.monotonic() - began < 5
        assert _value(samples, "minion_scrape_error") == 1
        assert _value(samples, "minion_database_up") == 0
        assert _get(daemon, "/healthz")[0] == 200, "the supervisor itself is fine"
        assert _get(daemon, "/readyz")[0] == 503
    finally:
        server.stop()


def test_promtool_accepts_a_live_scrape(start: Any, minion: Minion) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: bash tests/run installs Debian's prometheus package"
    daemon, _ = start()
    _up(daemon)
    minion.enqueue("add", [1, 1])
    wait_until(lambda: minion.stats()["finished_jobs"] == 1, 30, "one job")
    _, text = _get(daemon, "/metrics")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_outcomes_tell_retried_from_failed_and_killed(
    start: Any, minion: Minion, dsn: str
) -> None:
    daemon, _ = start(metrics={"cache_seconds": 0}, workers={"tasks": {"stubborn": {"timeout": 1}}})
    _up(daemon)
    minion.enqueue("add", ["one"], attempts=2)
    timed_out = minion.enqueue("stubborn", [60])
    labels = {"task": "add", "queue": "default"}

    def counted() -> Samples | None:
        hasten_retries(dsn)  # the first retry's backoff is 15 s (retries ** 4 + 15)
        samples = _scrape(daemon)
        outcomes = [
            _value(samples, "minion_jobs_processed_total", outcome=outcome, **labels)
            for outcome in ("retried", "failed")
        ]
        stubborn = {"task": "stubborn", "queue": "default", "outcome": "timed_out"}
        return (
            samples
            if outcomes == [1, 1]
            and _value(samples, "minion_jobs_processed_total", **stubborn) == 1
            else None
        )

    wait_until(counted, 40, "a retried, a failed and a timed out run")
    assert minion.job(timed_out).info["result"] == "Job timed out after 1 seconds"
    daemon.signal(signal.SIGTERM)
    assert daemon.finish()[0] == 0
