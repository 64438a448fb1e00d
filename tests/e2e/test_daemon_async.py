"""`minion-daemon run` with async tasks: a graceful stop, metrics and logs as for other modes."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import add_distribution
from helpers.waiting import wait_until

from minion_daemon import Minion


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    """The daemon's tasks: the async test tasks (``start`` installs these)."""
    points = {name: f"helpers.async_tasks:{name}" for name in ("async_add", "async_sleep")}
    return add_distribution(tmp_path, "daemon-async-tasks", points)


def _info(minion: Minion, job_id: int) -> dict[str, Any]:
    return dict(minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0])


def test_past_the_graceful_timeout_coroutines_are_cancelled_failed_and_retried(
    start: Any, minion: Minion
) -> None:
    daemon, _ = start(shutdown={"graceful_timeout": 1})
    job_id = minion.enqueue("async_sleep", [60], attempts=2)
    wait_until(lambda: _info(minion, job_id)["notes"].get("began"), 30, "the coroutine to run")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    info = _info(minion, job_id)
    assert (info["state"], info["retries"]) == ("inactive", 1), "failed, and retried"
    assert info["result"] == "Job terminated unexpectedly (exit code: 0, signal: 15)"
    assert info["notes"] == {"began": True, "cleaned": True}, "cancelled: its finally ran"
    assert minion.stats()["active_jobs"] == 0


def test_async_jobs_are_counted_and_logged_as_other_modes(start: Any, minion: Minion) -> None:
    daemon, _ = start(metrics={"cache_seconds": 0})
    job_id = minion.enqueue("async_add", [2, 2])
    wait_until(lambda: _info(minion, job_id)["state"] == "finished", 30, "the job to finish")

    def scraped() -> str | None:
        with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as answer:  # noqa: S310
            text: str = answer.read().decode()
        finished = 'processed_total{outcome="finished",queue="default",task="async_add"}'
        return text if finished in text else None

    text = wait_until(scraped, 30, "the finished async job in the metrics")
    assert 'minion_job_duration_seconds_count{queue="default",task="async_add"} 1.0' in text
    assert 'minion_jobs_running{queue="default",task="async_add"} 0.0' in text
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert "job.finished" in errors
    assert "mode=async" in errors or '"mode": "async"' in errors
