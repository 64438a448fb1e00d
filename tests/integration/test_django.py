"""Django: enqueue inside ``transaction.atomic()`` on Django's own psycopg 3 connection, and
``manage.py minion_daemon`` running the daemon with Django set up (docs/django.md).

The test project is tests/helpers/django_site, set up once in this process on a database of
its own; the daemon runs as a subprocess through its manage.py, with the project's task
installed as an entry point.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
import psycopg
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.db.transaction import TransactionManagementError
from helpers.daemon import add_distribution, quick_settings

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.contrib.django import connection
from minion_daemon.contrib.django import dsn as django_dsn

TESTS = Path(__file__).resolve().parents[1]
MANAGE = TESTS / "helpers" / "django_site" / "manage.py"
SETTINGS = "helpers.django_site.settings"


class Cancelled(Exception):
    """Raised inside an atomic block to roll it back."""


@contextlib.contextmanager
def _rolled_back() -> Iterator[None]:
    """An atomic block whose body ends by raising, as Django code rolls back."""
    with contextlib.suppress(Cancelled), transaction.atomic():
        yield
        raise Cancelled


@pytest.fixture(scope="session")
def shop_dsn(make_session_database: Callable[[int | None], str]) -> Iterator[str]:
    """The test project's database (Minion's schema, then Django's tables), with Django set up
    on it in this process: once, as Django's settings are (a module's fixture would be made
    again when the run comes back to the module, as it does after its slow test)."""
    dsn = make_session_database(25)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOP_DSN", dsn)
        patch.setenv("DJANGO_SETTINGS_MODULE", SETTINGS)
        django.setup()
        call_command("migrate", run_syncdb=True, verbosity=0)
        yield dsn
        connections.close_all()


@pytest.fixture(scope="module")
def shop_minion(shop_dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(shop_dsn, min_size=0))
    yield minion
    minion.close()


@pytest.fixture
def minion(shop_minion: Minion) -> Iterator[Minion]:
    """The module's Minion, on the project's database, emptied after each test with the
    orders."""
    from helpers.django_site.shop.models import Order

    yield shop_minion
    shop_minion.reset(all=True)
    Order.objects.all().delete()


# The models can be imported only once Django is set up (shop_dsn).


def _order(item: str) -> Any:
    from helpers.django_site.shop.models import Order

    return Order.objects.create(item=item)


def _orders() -> list[str]:
    from helpers.django_site.shop.models import Order

    return sorted(Order.objects.values_list("item", flat=True))


def test_a_job_enqueued_in_an_atomic_block_that_rolls_back_does_not_exist(minion: Minion) -> None:
    with _rolled_back():
        order = _order("book")
        job_id = minion.enqueue("ship", [order.pk], conn=connection())
        [first, second] = minion.enqueue_many(
            [("mail", [order.pk], None), ("bill", [order.pk], {"priority": 3})],
            conn=connection(),
        )

    assert [minion.job(i) for i in (job_id, first, second)] == [None, None, None]
    assert _orders() == []


def test_a_job_enqueued_in_an_atomic_block_that_commits_exists_from_the_commit(
    minion: Minion,
) -> None:
    with transaction.atomic():
        order = _order("book")
        job_id = minion.enqueue("ship", [order.pk], conn=connection(), priority=4)
        assert minion.job(job_id) is None  # Minion's own connection cannot see it yet

    [info] = minion.enqueued(task="ship")
    assert (info["id"], info["args"], info["priority"]) == (job_id, [order.pk], 4)
    assert _orders() == ["book"]


def test_a_job_enqueued_in_a_nested_block_goes_with_its_savepoint(minion: Minion) -> None:
    with transaction.atomic():
        kept = minion.enqueue("ship", [_order("book").pk], conn=connection())
        with _rolled_back():
            minion.enqueue("ship", [_order("lamp").pk], conn=connection())

    assert [job["id"] for job in minion.enqueued(task="ship")] == [kept]
    assert _orders() == ["book"]


def test_a_job_enqueued_outside_an_atomic_block_exists_at_once(minion: Minion) -> None:
    job_id = minion.enqueue("ship", [1], conn=connection())
    assert minion.job(job_id) is not None


def test_connection_refuses_a_database_that_is_not_postgresql(shop_dsn: str) -> None:
    with pytest.raises(TypeError, match=r"DATABASES\['local'\] is sqlite, not PostgreSQL"):
        connection("local")


def test_connection_refuses_a_block_that_an_error_doomed(shop_dsn: str) -> None:
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            connection()


def test_dsn_reaches_djangos_database(shop_dsn: str) -> None:
    with psycopg.connect(django_dsn()) as conn:
        named = conn.execute("SELECT current_database()").fetchone()
    assert named == (connections["default"].settings_dict["NAME"],)


def test_the_command_uses_djangos_database_unless_told_otherwise(
    minion: Minion, backend: PgBackend, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    minion.enqueue("ship", [1])
    backend.enqueue("elsewhere", [2])

    call_command("minion_daemon", "job", "--json")
    assert [job["task"] for job in json.loads(capsys.readouterr().out)["jobs"]] == ["ship"]
    call_command("minion_daemon", "job", "--json", "--dsn", dsn)
    assert [job["task"] for job in json.loads(capsys.readouterr().out)["jobs"]] == ["elsewhere"]


def test_the_command_exits_with_minion_daemons_code(
    minion: Minion, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        call_command("minion_daemon", "job", "4711")
    assert exited.value.code == 1
    assert capsys.readouterr().err == "minion-daemon: Job 4711 does not exist.\n"


def test_the_command_refuses_a_database_that_is_not_postgresql(shop_dsn: str) -> None:
    with pytest.raises(CommandError, match=r"DATABASES\['local'\] is sqlite"):
        call_command("minion_daemon", "--database", "local", "job")


def test_the_command_refuses_djangos_connection_pool(
    shop_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connections["default"].settings_dict["OPTIONS"], "pool", True)
    with pytest.raises(CommandError, match=r"DATABASES\['default'\]\['OPTIONS'\]\['pool'\]"):
        call_command("minion_daemon", "job")


@pytest.mark.slow(seconds=10)
def test_the_daemon_under_manage_py_runs_jobs_that_use_the_orm(
    minion: Minion, shop_dsn: str, tmp_path: Path
) -> None:
    """Each process has a Django session of its own: the daemon's supervisor (manage.py's
    process, whose system checks opened one), its worker, where inline jobs share one, and a
    job process; and the worker's session goes on after a job process was forked."""

    def ship(task: str, item: str) -> dict[str, Any]:
        with transaction.atomic():
            order = _order(item)
            job_id = minion.enqueue(task, [order.pk], conn=connection())
        info = minion.result(job_id, timeout=30)
        assert info is not None
        assert info["state"] == "finished", info["result"]
        result: dict[str, Any] = info["result"]
        order.refresh_from_db()
        assert order.shipped_by == result["pid"]
        return result

    with _daemon(shop_dsn, tmp_path) as daemon:
        inline = ship("ship_inline", "book")
        forked = ship("ship", "lamp")
        again = ship("ship_inline", "desk")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0

    supervisor = int((tmp_path / "session").read_text(encoding="utf-8"))
    assert len({supervisor, inline["session"], forked["session"]}) == 3
    assert forked["pid"] != inline["pid"]
    assert again == inline


@contextlib.contextmanager
def _daemon(shop_dsn: str, directory: Path) -> Iterator[subprocess.Popen[str]]:
    """``manage.py minion_daemon run``, given no database: Django's is the daemon's. Killed
    at the end if it still runs (a test that failed before stopping it): QUIT, then KILL."""
    tasks = "helpers.django_site.shop.tasks:ship"
    path = add_distribution(directory, "shop-tasks", {"ship": tasks, "ship_inline": tasks})
    settings = quick_settings()
    settings["workers"].update(processes=1, tasks={"ship_inline": {"mode": "inline"}})
    settings |= {
        "tasks": {"entry_points": ["ship", "ship_inline"]},
        "metrics": {"enabled": False},
        "admin": {"enabled": False},
    }
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    # The PYTHONPATH of the run goes on behind ours: a run from a source tree imports it.
    inherited = os.environ.get("PYTHONPATH")
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(str(p) for p in (path, TESTS, inherited) if p),
        SHOP_DSN=shop_dsn,
        SHOP_SESSION_FILE=str(directory / "session"),
        DJANGO_SETTINGS_MODULE=SETTINGS,
    )
    environment.pop("MINION_DAEMON_DSN", None)
    command = [sys.executable, str(MANAGE), "minion_daemon", "run", "-c", str(config)]
    daemon = subprocess.Popen(
        [*command, "--state-dir", str(directory / "state")], env=environment, text=True
    )
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGQUIT)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=10)
