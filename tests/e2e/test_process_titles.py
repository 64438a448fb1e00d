"""Every process of a running daemon says what it is in ps and top (issue 13): all of them
were `python -m minion_daemon run -c ...` before."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from helpers.processes import children
from helpers.waiting import wait_until

from minion_daemon import Minion


def _comm(pid: int) -> str | None:
    """The process's 15-byte name, which top shows by default and pgrep matches."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return None


def _title(pid: int) -> str | None:
    """The process's command line as ps shows it; ``None`` once it is gone."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        return " ".join(argument.decode() for argument in arguments)
    return None


def test_supervisor_workers_metrics_admin_and_job_processes_have_titles(
    start: Any, minion: Minion
) -> None:
    daemon, _ = start()
    wait_until(
        lambda: _title(daemon.pid) == "minion-daemon: supervisor",
        30,
        f"the supervisor's title, still {_title(daemon.pid)!r}",
    )

    def titled_children() -> dict[int, str | None]:
        return {pid: _title(pid) for pid in children(daemon.pid)}

    def titled_as_expected() -> bool:
        titles = titled_children()
        workers = {f"minion-daemon: worker {pid}" for pid in titles}
        return len(titles) == 4 and set(titles.values()) - workers == {
            "minion-daemon: metrics",
            "minion-daemon: admin",
        }

    wait_until(titled_as_expected, 30, "titled workers, metrics and admin processes")
    names = {_title(pid): _comm(pid) for pid in children(daemon.pid)}
    assert sorted(names.values()) == [
        "minion-admin",
        "minion-metrics",
        "minion-worker",
        "minion-worker",
    ]
    assert _comm(daemon.pid) == "minion-daemon"

    job_id = minion.enqueue("sleep", [30])

    def job_pid() -> int | None:
        info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
        pid = info["notes"].get("minion_pid")
        return int(pid) if pid is not None else None

    pid = wait_until(job_pid, 30, "the job process's pid")
    wait_until(
        lambda: _title(pid) == f"minion-daemon: job {job_id} sleep",
        10,
        f"the job process's title, still {_title(pid)!r}",
    )
    assert _comm(pid) == "minion-job"
