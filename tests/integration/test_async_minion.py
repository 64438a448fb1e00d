"""``AsyncMinion``: the client for asyncio programs, against a real PostgreSQL.

Its operations are ``Minion``'s, awaited: these tests hold it to the same results, the same
argument errors (word for word), and enqueue on a caller's own ``psycopg.AsyncConnection``
inside the caller's transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest

from minion_daemon import AsyncMinion, Minion
from minion_daemon.backend import PgBackend
from minion_daemon.backend.aio import DEFAULT_MAX_SIZE, AsyncPgBackend
from minion_daemon.backend.connections import ConnectionSettings

T = TypeVar("T")


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    minion.backend.schema_version  # noqa: B018 - creates the schema the async client expects
    yield minion
    minion.close()


def run(dsn: str, scenario: Callable[[AsyncMinion], Awaitable[T]]) -> T:
    """Run ``scenario(client)`` on a fresh loop with a client closed after."""

    async def main() -> T:
        async with AsyncMinion(dsn) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_enqueue_job_info_result_and_enqueue_many(minion: Minion, dsn: str) -> None:
    minion.add_task("add", lambda job, a, b: a + b, mode="inline")

    async def enqueue(client: AsyncMinion) -> tuple[int, list[int], Any]:
        job_id = await client.enqueue("add", [1, 2], priority=5, notes={"k": "v"})
        many = await client.enqueue_many([("add", [3, 4], None), ("add", [5, 6], {"queue": "q"})])
        job = await client.job(job_id)
        assert job is not None
        return job_id, many, await job.info()

    job_id, many, info = run(dsn, enqueue)
    assert (info["state"], info["priority"], info["notes"]) == ("inactive", 5, {"k": "v"})
    assert len(many) == 2
    assert many == sorted(many)
    assert minion.job(many[1]).info["queue"] == "q"  # type: ignore[index, union-attr]
    minion.perform_jobs()

    async def results(client: AsyncMinion) -> list[Any]:
        done = [await client.result(i, timeout=5) for i in (job_id, many[0])]
        return [info and info["result"] for info in done] + [await client.job(10**9)]

    assert run(dsn, results) == [3, 7, None]


def test_result_times_out_on_a_job_that_does_not_end(minion: Minion, dsn: str) -> None:
    async def wait(client: AsyncMinion) -> None:
        job_id = await client.enqueue("nobody_runs_this")
        await client.result(job_id, timeout=0.2, interval=0.05)

    with pytest.raises(TimeoutError, match="is still inactive"):
        run(dsn, wait)


def test_broadcast_locks_and_stats(minion: Minion, dsn: str) -> None:
    worker = minion.worker()
    worker_id = worker.register()

    async def scenario(client: AsyncMinion) -> list[Any]:
        return [
            await client.broadcast("jobs", [3], [worker_id]),
            await client.lock("shared", 60, limit=2),
            await client.lock("shared", 60, limit=2),
            await client.lock("shared", 60, limit=2),
            await client.is_locked("shared"),
            await client.unlock("shared"),
            (await client.stats())["workers"],
        ]

    assert run(dsn, scenario) == [True, True, True, False, True, True, 1]
    assert minion.backend.receive(worker_id) == [["jobs", 3]]
    worker.unregister()


BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("enqueue", ("",), {}),
    ("enqueue", ("task", "not a list"), {}),
    ("enqueue", ("task", []), {"priority": "high"}),
    ("enqueue", ("task", []), {"attempts": 0}),
    ("enqueue", ("task", []), {"colour": "red"}),
    ("enqueue", ("task", [float("nan")]), {}),
    ("enqueue", ("ta\x00sk",), {}),
    ("enqueue_many", ("not a list",), {}),
    ("enqueue_many", ([("task",)],), {}),
    ("enqueue_many", ([("task", [], {"delay": -1})],), {}),
    ("broadcast", ("",), {}),
    ("lock", ("name", "60"), {}),
    ("lock", ("name", 60), {"limit": 0}),
    ("unlock", (7,), {}),
]


@pytest.mark.parametrize(("operation", "args", "options"), BAD_CALLS)
def test_bad_arguments_raise_what_minion_raises(
    minion: Minion, dsn: str, operation: str, args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    with pytest.raises((TypeError, ValueError)) as expected:
        getattr(minion, operation)(*args, **options)

    async def call(client: AsyncMinion) -> None:
        await getattr(client, operation)(*args, **options)

    with pytest.raises((TypeError, ValueError)) as raised:
        run(dsn, call)
    assert (type(raised.value), str(raised.value)) == (type(expected.value), str(expected.value))


def test_enqueue_on_the_callers_connection_follows_its_transaction(
    minion: Minion, dsn: str
) -> None:
    async def scenario(client: AsyncMinion) -> tuple[int, int]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            async with conn.transaction():
                kept = await client.enqueue("task", [1], conn=conn)
                many = await client.enqueue_many([("task", [2], None)], conn=conn)
                assert await client.job(kept) is None, "invisible before the commit"
            try:
                async with conn.transaction():
                    dropped = await client.enqueue("task", [3], conn=conn)
                    raise RuntimeError("the handler failed")
            except RuntimeError:
                pass
        assert await client.job(many[0]) is not None
        return kept, dropped

    kept, dropped = run(dsn, scenario)
    assert minion.job(kept) is not None
    assert minion.job(dropped) is None, "rolled back with the caller's transaction"


def test_unique_jobs_through_the_async_client(minion: Minion, dsn: str) -> None:
    async def scenario(client: AsyncMinion) -> list[int]:
        return [await client.enqueue("task", unique="key") for _ in range(2)]

    first, second = run(dsn, scenario)
    assert first == second == minion.enqueue("task", unique="key")


def test_a_client_keeps_to_its_pools_connections_however_many_coroutines_use_it(
    minion: Minion, dsn: str
) -> None:
    settings = ConnectionSettings(dsn, application_name="async-pool-test")

    async def scenario() -> int:
        async with AsyncMinion(AsyncPgBackend(settings)) as client:
            await asyncio.gather(*(client.enqueue("task") for _ in range(20)))
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                cursor = await conn.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s",
                    ["async-pool-test"],
                )
                row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    assert asyncio.run(scenario()) <= DEFAULT_MAX_SIZE
