"""SQLAlchemy 2, sync and asyncio: enqueue in a Session's (or a Connection's) transaction, on its
psycopg 3 connection (docs/sqlalchemy.md). A rolled back transaction leaves no job, a committed one
leaves the job with the rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from psycopg import conninfo
from sqlalchemy import URL, Engine, String, create_engine, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from minion_daemon import AsyncMinion, Minion
from minion_daemon.contrib.sqlalchemy import async_connection, connection


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str] = mapped_column(String(100))


class Cancelled(Exception):
    """Raised inside ``engine.begin()`` to roll it back."""


@pytest.fixture
def engine(dsn: str) -> Iterator[Engine]:
    params = {key: str(value) for key, value in conninfo.conninfo_to_dict(dsn).items()}
    # The query's keywords (host, port, ...) go to psycopg.connect as they are.
    url = URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None),
        database=params.pop("dbname", None),
        query=params,
    )
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


def _orders(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.scalars(select(Order.item)))


def test_a_job_enqueued_in_a_session_that_rolls_back_does_not_exist(
    engine: Engine, minion: Minion
) -> None:
    with Session(engine) as session:
        session.add(Order(item="book"))
        job_id = minion.enqueue("ship", ["book"], conn=connection(session))
        [many] = minion.enqueue_many([("mail", [], None)], conn=connection(session))
        session.rollback()

    assert (minion.job(job_id), minion.job(many)) == (None, None)
    assert _orders(engine) == []


def test_a_job_enqueued_in_a_session_that_commits_exists_from_the_commit(
    engine: Engine, minion: Minion
) -> None:
    with Session(engine) as session, session.begin():
        session.add(Order(item="book"))
        job_id = minion.enqueue("ship", ["book"], conn=connection(session), queue="shop")
        assert minion.job(job_id) is None  # Minion's own connection cannot see it yet

    [info] = minion.enqueued(task="ship")
    assert (info["id"], info["args"], info["queue"]) == (job_id, ["book"], "shop")
    assert _orders(engine) == ["book"]


def test_a_job_enqueued_in_a_nested_transaction_goes_with_its_savepoint(
    engine: Engine, minion: Minion
) -> None:
    with Session(engine) as session, session.begin():
        kept = minion.enqueue("ship", ["book"], conn=connection(session))
        savepoint = session.begin_nested()
        minion.enqueue("ship", ["lamp"], conn=connection(session))
        savepoint.rollback()

    assert [job["id"] for job in minion.enqueued(task="ship")] == [kept]


def test_a_connection_without_a_transaction_gets_one_that_its_commit_ends(
    engine: Engine, minion: Minion
) -> None:
    with engine.connect() as conn:
        job_id = minion.enqueue("ship", ["book"], conn=connection(conn))
        assert conn.in_transaction()
        conn.commit()

    assert [job["id"] for job in minion.enqueued(task="ship")] == [job_id]


def test_a_connection_that_rolls_back_takes_its_job_along(engine: Engine, minion: Minion) -> None:
    with contextlib.suppress(Cancelled), engine.begin() as conn:
        conn.execute(insert(Order).values(item="book"))
        minion.enqueue("ship", ["book"], conn=connection(conn))
        raise Cancelled

    assert minion.enqueued(task="ship") == []
    assert _orders(engine) == []


def test_a_driver_other_than_psycopg_3_is_refused() -> None:
    engine = create_engine("sqlite://")
    with Session(engine) as session, pytest.raises(TypeError, match="sqlite\\+pysqlite"):
        connection(session)
    engine.dispose()


def test_the_engines_url_as_postgresql_is_minions_dsn(engine: Engine, minion: Minion) -> None:
    """docs/sqlalchemy.md: Minion on the engine's database, from the engine's URL."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with Session(engine) as session, session.begin():
        job_id = minion.enqueue("ship", ["book"], conn=connection(session))

    same = Minion(url)
    try:
        assert [job["id"] for job in same.enqueued(task="ship")] == [job_id]
    finally:
        same.close()


def test_an_async_session_commits_its_job_with_its_rows_and_a_rollback_leaves_none(
    engine: Engine, minion: Minion, dsn: str
) -> None:
    async def orders_and_jobs() -> tuple[int, int]:
        async_engine = create_async_engine(engine.url)
        try:
            async with AsyncMinion(dsn) as client:
                async with AsyncSession(async_engine) as session, session.begin():
                    session.add(Order(item="book"))
                    conn = await async_connection(session)
                    kept = await client.enqueue("ship", ["book"], conn=conn)
                    assert await client.job(kept) is None  # not committed yet
                with contextlib.suppress(Cancelled):
                    async with AsyncSession(async_engine) as session, session.begin():
                        session.add(Order(item="lamp"))
                        conn = await async_connection(session)
                        await client.enqueue("ship", ["lamp"], conn=conn)
                        raise Cancelled
                async with async_engine.connect() as conn:
                    # No transaction open yet: async_connection begins one its commit ends.
                    later = await client.enqueue("mail", [], conn=await async_connection(conn))
                    await conn.commit()
            return kept, later
        finally:
            await async_engine.dispose()

    kept, later = asyncio.run(orders_and_jobs())
    assert _orders(engine) == ["book"]
    assert [job["id"] for job in minion.enqueued(task="ship")] == [kept]
    assert [job["id"] for job in minion.enqueued(task="mail")] == [later]
