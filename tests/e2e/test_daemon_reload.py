"""HUP: a reload applies every section it can while the daemon runs, and names the keys that
need a restart."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from helpers.daemon import Daemon, free_port
from helpers.waiting import wait_until

from minion_daemon import Minion


def _events(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    assert daemon.log is not None
    lines = daemon.log.read_text(encoding="utf-8").splitlines()
    return [line for line in map(json.loads, lines) if line["event"] == event]


def _reload(daemon: Daemon, config: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """Change ``sections`` of the config file, send HUP and return the reload's log line."""
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    for name, values in sections.items():
        settings.setdefault(name, {}).update(values)
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    before = len(_events(daemon, "config.reloaded"))
    daemon.signal(signal.SIGHUP)
    return wait_until(
        lambda: (lines := _events(daemon, "config.reloaded"))[before:] and lines[-1],
        30,
        "the reload's log line",
    )


def _exists(minion: Minion, job_id: int) -> bool:
    return bool(minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"])


def _state(minion: Minion, job_id: int) -> str:
    return str(minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["state"])


def test_hup_applies_a_new_remove_after_to_the_next_repair(start: Any, minion: Minion) -> None:
    daemon, config = start(repair={"interval": 1})
    job_id = minion.enqueue("add", [2, 3])
    wait_until(lambda: _state(minion, job_id) == "finished", 30, "the job")
    repairs = len(_events(daemon, "repair.done"))
    wait_until(lambda: len(_events(daemon, "repair.done")) >= repairs + 2, 30, "two repairs")
    assert _exists(minion, job_id), "removed before its two days were up"
    line = _reload(daemon, config, minion={"remove_after": 0})
    assert "needs_restart" not in line, line
    wait_until(lambda: not _exists(minion, job_id), 30, "repair to remove the finished job")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors


def test_hup_applies_a_new_repair_interval_at_once(start: Any, minion: Minion) -> None:
    """The first repair took the fleet's repair guard for half an hour; a shorter interval
    must not wait for it."""
    daemon, config = start(repair={"interval": 3600})
    wait_until(lambda: _events(daemon, "repair.done"), 30, "the repair at start")
    _reload(daemon, config, repair={"interval": 1})
    wait_until(lambda: len(_events(daemon, "repair.done")) >= 3, 30, "repairs every second")
    _reload(daemon, config, repair={"enabled": False})
    repairs = len(_events(daemon, "repair.done"))
    time.sleep(3)
    assert len(_events(daemon, "repair.done")) <= repairs + 1  # one may have been under way
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors


def test_hup_names_the_keys_that_need_a_restart_and_keeps_their_running_values(
    start: Any, minion: Minion
) -> None:
    daemon, config = start(workers={"processes": 1})
    wait_until(lambda: minion.stats()["workers"] == 1, 30, "a worker")
    old = daemon.url
    moved = f"127.0.0.1:{free_port()}"
    line = _reload(daemon, config, metrics={"listen": moved}, workers={"processes": 2})
    assert line["needs_restart"] == ["metrics.listen"]
    wait_until(lambda: minion.stats()["workers"] == 2, 30, "the new process count applied")
    assert _serves(f"{old}/healthz")
    assert not _serves(f"http://{moved}/healthz")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors


def test_hup_refuses_a_task_entry_point_that_no_package_provides(
    start: Any, minion: Minion
) -> None:
    """As at start: new workers could not load it, and would stop the daemon (exit 3)."""
    daemon, config = start(workers={"processes": 1})
    wait_until(lambda: minion.stats()["workers"] == 1, 30, "a worker")
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["tasks"] = {"entry_points": ["absent"]}
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    [failed] = wait_until(lambda: _events(daemon, "config.reload_failed"), 30, "the refusal")
    assert "no minion_daemon.tasks entry point named 'absent'" in failed["error"]
    job_id = minion.enqueue("add", [2, 3])
    wait_until(lambda: _state(minion, job_id) == "finished", 30, "a job, after the refusal")
    assert not _events(daemon, "config.reloaded")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors


def _serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback only
            return answer.status == 200
    except OSError:
        return False
