"""The backend through PgBouncer's transaction pooling (docs/pgbouncer.md).

A PgBouncer of one server connection makes every client share one server session, so what
one client leaves in the session (a setting, a prepared statement, a LISTEN) is what the next
one finds.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from helpers.pgbouncer import PgBouncer, running_pgbouncer
from helpers.postgres import Server

from minion_daemon.backend import PgBackend
from minion_daemon.errors import BackendError


@pytest.fixture(scope="module")
def one_session(pg_server: Server) -> Iterator[PgBouncer]:
    with running_pgbouncer(pg_server, pool_size=1) as bouncer:
        yield bouncer


def _through(bouncer: PgBouncer, dsn: str) -> str:
    return bouncer.dsn(str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]))


def _pooled(conninfo: str, **kwargs: Any) -> PgBackend:
    return PgBackend(conninfo, pool_mode="transaction", min_size=0, **kwargs)


def _show(conninfo: str, setting: str) -> str:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(f"SHOW {setting}").fetchone()  # a name, never input
        assert row is not None
        return str(row[0])


def test_no_session_setting_is_left_to_the_next_client(one_session: PgBouncer, dsn: str) -> None:
    through = _through(one_session, dsn)
    expected = {name: _show(dsn, name) for name in ("jit", "statement_timeout", "lock_timeout")}
    backend = _pooled(through, pooled=False, lock_timeout=1.25, statement_timeout=2.5)
    try:
        backend.enqueue("add", [1, 2])
        assert backend.stats()["inactive_jobs"] == 1
    finally:
        backend.close()
    assert {name: _show(through, name) for name in expected} == expected


def test_claims_and_locks_prepare_nothing_that_another_client_could_meet(
    one_session: PgBouncer, dsn: str
) -> None:
    through = _through(one_session, dsn)
    first, second = _pooled(through), _pooled(through)
    try:
        for turn in range(8):  # past psycopg's threshold of five, and the claims' prepare=True
            for backend in (first, second):
                worker = backend.register_worker()
                backend.enqueue("add", [turn, 1])
                job = backend.dequeue(worker, 0, {})
                assert job is not None
                assert backend.finish_job(job["id"], job["retries"], {"turn": turn})
                assert backend.settle_and_claim(worker, 1).claimed == []
                assert backend.lock("shared", 60, {"limit": 2})
                assert backend.unlock("shared")
    finally:
        first.close()
        second.close()
    with psycopg.connect(through, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_without_listen_dsn_the_backend_cannot_listen(pgbouncer: PgBouncer, dsn: str) -> None:
    backend = _pooled(_through(pgbouncer, dsn))
    try:
        assert not backend.can_listen
        assert backend.listen() is None
        assert not backend.listening
    finally:
        backend.close()


def test_with_listen_dsn_an_enqueue_through_the_pooler_wakes_the_listener(
    pgbouncer: PgBouncer, dsn: str
) -> None:
    through = _through(pgbouncer, dsn)
    listener = _pooled(through, listen_dsn=dsn)
    enqueuer = _pooled(through)
    try:
        assert listener.can_listen
        descriptor = listener.listen()
        assert descriptor is not None
        enqueuer.enqueue("add", [1, 2])
        readable, _, _ = select.select([descriptor], [], [], 10)
        assert readable == [descriptor]
    finally:
        listener.close()
        enqueuer.close()


def test_the_supervisors_timeouts_bound_each_transaction_instead_of_the_session(
    pgbouncer: PgBouncer, dsn: str
) -> None:
    bounded = _pooled(_through(pgbouncer, dsn), pooled=False, lock_timeout=0.2)
    try:
        bounded.stats()
        with psycopg.connect(dsn) as holder:
            # Should the bound be lost, the wait ends with the holder's session anyway.
            holder.execute("SET idle_in_transaction_session_timeout = '20s'")
            holder.execute("LOCK TABLE minion_jobs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(BackendError, match="lock timeout"):
                bounded.repair()
            with pytest.raises(BackendError, match="lock timeout"):
                bounded.stats()  # a snapshot, whose isolation comes first
            holder.rollback()
        assert bounded.stats()["inactive_jobs"] == 0
    finally:
        bounded.close()
