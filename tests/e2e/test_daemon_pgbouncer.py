"""The daemon through PgBouncer's transaction pooling (docs/pgbouncer.md): claims, finishes,
repair, schedules and metrics all go through the pooler; LISTEN goes over ``listen_dsn`` when
it is given, else the workers poll every ``dequeue_timeout`` and say so."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from helpers.pgbouncer import PgBouncer
from helpers.sql import execute
from helpers.waiting import wait_until
from prometheus_client.parser import text_string_to_metric_families

from minion_daemon import Minion
from minion_daemon.backend import PgBackend

#: Long enough that only a notification can wake a listening worker in time.
LISTENING_TIMEOUT = 60
POLLING_TIMEOUT = 1


@pytest.fixture
def through(pgbouncer: PgBouncer, dsn: str) -> str:
    return pgbouncer.dsn(str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]))


@pytest.fixture
def pooled(through: str) -> Iterator[Minion]:
    """A Minion whose every statement goes through the pooler."""
    minion = Minion(PgBackend(through, pool_mode="transaction", min_size=0))
    yield minion
    minion.close()


def _metric(url: str, name: str, **labels: str) -> float | None:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:  # noqa: S310
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def _states(dsn: str, ids: list[int]) -> dict[int, str]:
    query = "SELECT id, state::text FROM minion_jobs WHERE id = ANY(%s)"
    return dict(execute(dsn, query, (ids,)))


@pytest.mark.parametrize("listen", ["polling", "listen_dsn"])
def test_the_daemon_works_through_pgbouncer(
    start: Any, pooled: Minion, through: str, dsn: str, listen: str
) -> None:
    backend = pooled.backend
    assert isinstance(backend, PgBackend)
    backend.schedule("sums", "* * * * *", "add", [2, 3])
    execute(dsn, "UPDATE minion_schedules SET next_run = NOW()")
    # An active job whose worker is gone: repair's to fail.
    gone = backend.register_worker()
    abandoned = backend.enqueue("add", [0, 0])
    assert backend.dequeue(gone, 0, {"id": abandoned}) is not None
    backend.unregister_worker(gone)

    postgres = {"dsn": through, "pool_mode": "transaction"}
    timeout = POLLING_TIMEOUT
    if listen == "listen_dsn":
        postgres["listen_dsn"] = dsn
        timeout = LISTENING_TIMEOUT
    daemon, _ = start(
        postgres=postgres,
        workers={"dequeue_timeout": timeout},
        repair={"interval": 1},
        schedules={"dispatch_interval": 1},
    )
    ids = [pooled.enqueue("add", [number, 1]) for number in range(20)]
    wait_until(lambda: set(_states(dsn, ids).values()) == {"finished"}, 60, "20 jobs finished")
    assert execute(dsn, "SELECT result FROM minion_jobs WHERE id = %s", (ids[3],)) == [
        ({"added": 4},)
    ]
    wait_until(lambda: _states(dsn, [abandoned]) == {abandoned: "failed"}, 30, "repair")
    dispatched = """SELECT j.id FROM minion_schedules AS s JOIN minion_jobs AS j
      ON j.id = s.last_job AND j.state = 'finished'"""
    wait_until(lambda: execute(dsn, dispatched), 30, "the schedule's job finished")

    assert daemon.log is not None
    wait_until(lambda: _metric(daemon.url, "minion_worker_listen_healthy") is not None, 30)
    healthy = _metric(daemon.url, "minion_worker_listen_healthy")
    assert (_metric(daemon.url, "minion_jobs", state="finished") or 0) >= 20
    log = daemon.log.read_text(encoding="utf-8")
    if listen == "polling":
        assert "worker.polling" in log
        assert healthy == 0
    else:
        assert "worker.polling" not in log
        assert healthy == 1
        # Both workers wait up to a minute; only the notification can start this job at once.
        late = pooled.enqueue("add", [40, 2])
        wait_until(lambda: _states(dsn, [late]) == {late: "finished"}, 15, "a woken worker")
