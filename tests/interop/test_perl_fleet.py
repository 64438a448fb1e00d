"""A Perl Minion 10.25 fleet (schema 23) beside our commands: nothing we run upgrades it, and
``migrate --to 23`` brings a database at 25 back to a schema it works on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from helpers.postgres import Server
from interop.test_perl_minion import PERL_SCHEMA, Peer
from psycopg.conninfo import conninfo_to_dict

from minion_daemon import Minion
from minion_daemon.cli import main

pytestmark = pytest.mark.interop

MakeDatabase = Callable[[int | None], str]


def _peer(pg_server: Server, dsn: str) -> Peer:
    return Peer(pg_server.url(str(conninfo_to_dict(dsn)["dbname"])))


def test_perl_keeps_working_after_our_commands_and_minion(
    make_database: MakeDatabase, pg_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(PERL_SCHEMA)
    assert main(["job", "-s", "--dsn", dsn]) == 0
    minion = Minion(dsn)
    try:
        minion.stats()
    finally:
        minion.close()
    capsys.readouterr()
    assert _peer(pg_server, dsn).run("version") == {"version": PERL_SCHEMA, "workers": 0}


def test_perl_works_on_a_25_database_after_migrate_to_23(
    make_database: MakeDatabase, pg_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(25)
    assert main(["migrate", "--dsn", dsn, "--to", str(PERL_SCHEMA)]) == 0
    peer = _peer(pg_server, dsn)
    assert peer.run("version") == {"version": PERL_SCHEMA, "workers": 0}
    minion = Minion(dsn)
    try:
        added = minion.enqueue("add", [2, 3])
        assert peer.run("work") == {"performed": 1}
        info = minion.backend.list_jobs(0, 1, {"ids": [added]})["jobs"][0]
        assert (info["state"], info["result"]) == ("finished", {"sum": 5})
        assert minion.backend.schema_version == PERL_SCHEMA
    finally:
        minion.close()
    capsys.readouterr()
