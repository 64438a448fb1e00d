"""Job args and notes full of SQL, shell and control characters are stored and returned verbatim.

Through the API (enqueue, list_jobs, a job's info, note, and SQL-looking task and queue names
used as filters) and through the real daemon, whose worker runs ``echo`` in a job process: the
result, recorded by that process, equals the args it was given.
"""

from __future__ import annotations

import signal
from typing import Any

from helpers.daemon import free_port

from minion_daemon import Minion
from minion_daemon.backend import PgBackend

CONTROL = "".join(chr(code) for code in range(1, 32)) + "\x7f"

HOSTILE = [
    "'; DROP TABLE minion_jobs; --",
    "\"; DROP TABLE minion_jobs; --",
    "1); DELETE FROM minion_workers WHERE (1=1",
    "' OR '1'='1",
    "$$; SELECT pg_sleep(10); $$",
    "%s %(args)s $1 ? :name {} {0}",
    "E'\\x00' U&'\\0000' \\\\ \\' \\\"",
    "$(rm -rf /)",
    "`rm -rf /`",
    "; rm -rf / #",
    "| cat /etc/passwd && echo $HOME > /tmp/x",
    "${IFS}${PATH}",
    CONTROL,
    "\r\n\t\x0b\x0c\x1b[31mred\x1b[0m",
    "\u2028\u2029\u200b\u200d\ufeff\u202e\u0301",
    "\U0001f4a3 \u7206\u5f3e \u0431\u043e\u043c\u0431\u0430 \u05e4\u05e6\u05e6\u05d4",
    "\\u0000 \\x00 %00",
    "<script>alert(1)</script>",
    "x" * 1_000_000,
    CONTROL * 10_000,
]

NOTES: dict[str, Any] = {text[:200]: {"text": text, "list": [text]} for text in HOSTILE[:-2]}
NOTES["long"] = HOSTILE[-2]

SQL_NAME = HOSTILE[0]
SHELL_NAME = HOSTILE[7]


def test_the_api_stores_and_returns_hostile_strings_verbatim(backend: PgBackend) -> None:
    minion = Minion(backend)
    job_id = minion.enqueue(SQL_NAME, HOSTILE, notes=NOTES, queue=SHELL_NAME)
    [info] = backend.list_jobs(0, 1, {"tasks": [SQL_NAME], "queues": [SHELL_NAME]})["jobs"]
    assert info["id"] == job_id
    assert info["args"] == HOSTILE
    assert info["notes"] == NOTES
    assert (info["task"], info["queue"]) == (SQL_NAME, SHELL_NAME)
    assert backend.list_jobs(0, 1, {"notes": [HOSTILE[1]]})["jobs"][0]["id"] == job_id
    job = minion.job(job_id)
    assert job is not None
    assert job.args == HOSTILE
    assert job.note(**{HOSTILE[3]: HOSTILE[-1], CONTROL: CONTROL})
    notes = job.info["notes"]  # type: ignore[index]
    assert notes == {**NOTES, HOSTILE[3]: HOSTILE[-1], CONTROL: CONTROL}
    assert minion.lock(SQL_NAME, 60)
    assert backend.list_locks(0, 1, {"names": [SQL_NAME]})["locks"][0]["name"] == SQL_NAME
    # Nothing was executed: every table is there, holding what it should.
    stats = backend.stats()
    assert (stats["inactive_jobs"], stats["workers"], stats["active_locks"]) == (1, 0, 1)


def test_a_worker_echoes_hostile_args_verbatim(
    start_daemon: Any, minion: Minion, dsn: str
) -> None:
    daemon = start_daemon(
        {
            "postgres": {"dsn": dsn},
            "workers": {"processes": 1, "dequeue_timeout": 1},
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
            "shutdown": {"graceful_timeout": 5},
        }
    )
    job_id = minion.enqueue("echo", HOSTILE, notes=NOTES, queue="default")
    info = minion.result(job_id, timeout=60)
    assert info is not None
    assert info["state"] == "finished", info
    assert info["result"] == HOSTILE
    assert info["args"] == HOSTILE
    assert {key: info["notes"][key] for key in NOTES} == NOTES
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert minion.stats()["finished_jobs"] == 1
