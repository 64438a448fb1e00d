"""One database, two Minions: Debian's Perl Minion 10.25 (schema 23) and our backend.

The Perl side is real (``minion_peer.pl`` runs ``libminion-perl``); nothing here stands in for
it. Its absence fails these tests, it never skips them: ``tests/run`` installs it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.catalog import describe
from helpers.postgres import Server
from helpers.sql import execute
from psycopg.conninfo import conninfo_to_dict

from minion_daemon.backend import PgBackend

pytestmark = pytest.mark.interop

PEER = Path(__file__).with_name("minion_peer.pl")
PERL_SCHEMA = 23
MakeDatabase = Callable[[int | None], str]


class Peer:
    """Runs the Perl Minion against one database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        result = self.call(command, arguments)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def call(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = ["perl", str(PEER), self.url, command]
        if arguments is not None:
            argv.append(json.dumps(arguments))
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _peer(pg_server: Server, dsn: str) -> Peer:
    return Peer(pg_server.url(str(conninfo_to_dict(dsn)["dbname"])))


@pytest.fixture
def shared(make_database: MakeDatabase, pg_server: Server) -> Iterator[tuple[PgBackend, Peer]]:
    """A database migrated by us to 23, our backend on it, and the Perl peer on it."""
    dsn = make_database(None)
    backend = PgBackend(dsn, max_schema_version=PERL_SCHEMA, min_size=0)
    assert backend.schema_version == PERL_SCHEMA
    yield backend, _peer(pg_server, dsn)
    backend.close()


def _info(backend: PgBackend, job_id: int) -> dict[str, Any]:
    return dict(backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0])


def test_perl_opens_our_database_without_migrating(
    make_database: MakeDatabase, pg_server: Server
) -> None:
    dsn = make_database(PERL_SCHEMA)
    before = describe(dsn)
    assert _peer(pg_server, dsn).run("version") == {"version": PERL_SCHEMA, "workers": 0}
    assert describe(dsn) == before


def test_our_schema_equals_the_one_perl_creates(
    make_database: MakeDatabase, pg_server: Server
) -> None:
    perl_dsn = make_database(None)
    assert _peer(pg_server, perl_dsn).run("version")["version"] == PERL_SCHEMA
    assert describe(make_database(PERL_SCHEMA)) == describe(perl_dsn)


def test_perl_refuses_a_schema_newer_than_it_knows(
    make_database: MakeDatabase, pg_server: Server
) -> None:
    """Why ``max_schema_version: 23`` exists: Minion 10.25 dies on a database at 24."""
    result = _peer(pg_server, make_database(24)).call("version")
    assert result.returncode != 0
    assert "Active version 24 is greater than the latest version 23" in result.stderr


def test_jobs_perl_enqueues_are_performed_by_us(shared: tuple[PgBackend, Peer]) -> None:
    backend, peer = shared
    ids = peer.run("enqueue")
    worker = backend.register_worker()
    tasks = {"tasks": ["perl_parent", "perl_child", "perl_delayed"]}

    parent = backend.dequeue(worker, 0, tasks)
    assert {key: parent[key] for key in ("id", "args", "retries", "task")} == {
        "id": ids["parent"],
        "args": [1, "two"],
        "retries": 0,
        "task": "perl_parent",
    }
    assert backend.dequeue(worker, 0, tasks) is None, "the child waits for its parent"
    assert backend.finish_job(parent["id"], 0, {"by": "python"})

    child = backend.dequeue(worker, 0, tasks)
    assert child is not None
    assert (child["id"], child["args"]) == (ids["child"], [{"nested": [1, 2]}])
    assert backend.fail_job(child["id"], 0, ["python", "failed", "it"])
    assert backend.dequeue(worker, 0, tasks) is None, "the delayed job is not due"

    seen = peer.run("info", {"ids": list(ids.values())})
    parent_info, child_info = seen[str(ids["parent"])], seen[str(ids["child"])]
    assert (parent_info["state"], parent_info["result"]) == ("finished", {"by": "python"})
    assert parent_info["notes"] == {"origin": "perl"}
    # DBD::Pg hands bigint arrays to Perl as strings.
    assert [int(i) for i in parent_info["children"]] == [ids["child"]]
    assert (child_info["state"], child_info["result"]) == ("failed", ["python", "failed", "it"])
    assert [int(i) for i in child_info["parents"]] == [ids["parent"]]
    assert int(child_info["priority"]) == 5
    assert int(child_info["worker"]) == worker
    delayed = seen[str(ids["delayed"])]
    assert delayed["state"] == "inactive"
    assert float(delayed["delayed"]) > float(delayed["created"]) + 3000


def test_jobs_we_enqueue_are_performed_by_perl(shared: tuple[PgBackend, Peer]) -> None:
    backend, peer = shared
    add = backend.enqueue("add", [2, 3])
    fails = backend.enqueue("fails", [], {"parents": [add], "queue": "default"})
    noted = backend.enqueue("noted", [], {"notes": {"from": "python"}, "priority": 9})

    assert peer.run("work") == {"performed": 1}

    assert (_info(backend, add)["state"], _info(backend, add)["result"]) == (
        "finished",
        {"sum": 5},
    )
    assert (_info(backend, fails)["state"], _info(backend, fails)["result"]) == (
        "failed",
        "boom\n",
    )
    noted_info = _info(backend, noted)
    assert noted_info["state"] == "finished"
    assert noted_info["notes"] == {"from": "python", "seen_by": "perl"}
    assert noted_info["started"] is not None
    assert noted_info["worker"] is not None
    assert backend.stats()["workers"] == 0, "Perl's perform_jobs unregistered its worker"


def test_unique_keys_follow_what_perl_does_to_their_jobs(shared: tuple[PgBackend, Peer]) -> None:
    """Perl performs, removes and resets jobs without a look at our key table: whether a key
    is held is read from Minion's own table."""
    backend, peer = shared
    held = backend.enqueue("add", [7, 8], {"unique": "reset"})
    assert peer.run("reset") == {"reset": 1}
    stranger = backend.enqueue("other", [])
    assert stranger == held, "Perl's reset restarts the ids: the holder's id is another's now"
    assert backend.enqueue("add", [], {"unique": "reset"}) != stranger

    first = backend.enqueue("add", [1, 2], {"unique": "sum"})
    assert backend.enqueue("add", [3, 4], {"unique": "sum"}) == first
    assert peer.run("work") == {"performed": 1}
    assert _info(backend, first)["state"] == "finished"
    second = backend.enqueue("add", [3, 4], {"unique": "sum"})
    assert second != first, "a job Perl finished holds its key no more"

    windowed = backend.enqueue("add", [5, 6], {"unique": "window", "unique_for": 3600})
    assert peer.run("work") == {"performed": 1}
    assert backend.enqueue("add", [], {"unique": "window", "unique_for": 3600}) == windowed
    assert peer.run("repair", {"remove_after": 0}) == {"repaired": 1}
    assert backend.list_jobs(0, 10, {"ids": [windowed]})["jobs"] == []
    assert backend.enqueue("add", [], {"unique": "window", "unique_for": 3600}) != windowed


def test_locks_are_shared_both_ways(shared: tuple[PgBackend, Peer]) -> None:
    backend, peer = shared
    assert backend.lock("shared", 3600)
    assert peer.run("lock", {"name": "shared", "duration": 3600}) == {"locked": 0}
    assert peer.run("is_locked", {"name": "shared"}) == {"locked": 1}
    assert backend.unlock("shared")
    assert peer.run("lock", {"name": "shared", "duration": 3600}) == {"locked": 1}
    assert not backend.lock("shared", 3600)
    assert peer.run("unlock", {"name": "shared"}) == {"unlocked": 1}

    for _ in range(2):
        assert peer.run("lock", {"name": "pair", "duration": 60, "limit": 2}) == {"locked": 1}
    assert not backend.lock("pair", 60, {"limit": 2})
    assert backend.lock("pair", 60, {"limit": 3})
    assert backend.list_locks(0, 10, {"names": ["pair"]})["total"] == 3


def test_perl_broadcast_reaches_our_worker(shared: tuple[PgBackend, Peer]) -> None:
    backend, peer = shared
    worker = backend.register_worker(None, {"status": {"type": "Python"}})
    other = backend.register_worker()
    assert peer.run("broadcast", {"command": "jobs", "args": [0], "ids": []}) == {"sent": 1}
    assert peer.run("broadcast", {"command": "stop", "args": [42], "ids": [worker]}) == {"sent": 1}
    assert peer.run("broadcast", {"command": "jobs", "args": [1], "ids": [-5]}) == {"sent": 0}
    assert backend.receive(worker) == [["jobs", 0], ["stop", 42]]
    assert backend.receive(other) == [["jobs", 0]]
    assert backend.receive(worker) == []


def test_perl_and_we_count_the_same(shared: tuple[PgBackend, Peer]) -> None:
    backend, peer = shared
    worker = backend.register_worker()
    for priority in (1, 2, 3):
        backend.enqueue("count", [], {"priority": priority})
    backend.enqueue("later", [], {"delay": 600})
    job = backend.dequeue(worker, 0)
    assert job is not None
    backend.lock("counted", 60)
    ours = dict(backend.stats())
    theirs = peer.run("stats")
    assert ours["active_jobs"] == 1
    for key in ours.keys() - {"uptime"}:
        assert int(theirs[key]) == ours[key], key


# One job every 17 minutes over the last 30 hours: one in three failed, one in seven retried
# (inactive, its last end time kept), none near the edge of the 23-hour window.
ENDED_EVERY_17_MINUTES = """
INSERT INTO minion_jobs (args, delayed, finished, priority, state, task)
SELECT '[]', NOW(), NOW() - n * INTERVAL '17 minutes', 0,
  CASE WHEN n % 7 = 0 THEN 'inactive' WHEN n % 3 = 0 THEN 'failed' ELSE 'finished' END
    ::minion_state, 'test'
FROM generate_series(0, 105) AS n
"""


@pytest.mark.parametrize("version", [PERL_SCHEMA, 25])
def test_perl_and_we_draw_the_same_history(
    make_database: MakeDatabase, pg_server: Server, version: int
) -> None:
    """At 25 we count hour by hour along the (finished, state) index, at 23 in one pass over
    the table; Perl groups every job of the window. The points must agree."""
    dsn = make_database(version)
    execute(dsn, ENDED_EVERY_17_MINUTES)
    backend = PgBackend(dsn, pooled=False, max_schema_version=version)
    try:
        before = backend.history()["daily"]
        theirs = _peer(pg_server, dsn).run("history")["daily"]
        after = backend.history()["daily"]
    finally:
        backend.close()

    def counts(daily: list[Any]) -> list[tuple[int, int]]:
        return [(int(point["failed_jobs"]), int(point["finished_jobs"])) for point in daily]

    # Should the clock hour turn between the calls, one of ours still matches Perl's.
    assert counts(theirs) in (counts(before), counts(after))
    assert sum(failed for failed, _ in counts(theirs)) > 0
    for ours, perl in zip(before, theirs, strict=True):
        assert float(perl["epoch"]) == pytest.approx(ours["epoch"], abs=60)
