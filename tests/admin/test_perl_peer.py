"""The admin UI beside Perl Minion 10.25 (schema 23): its worker and its jobs are shown like
ours, and a broadcast from the UI reaches it. Nothing stands in for Perl (tests/run installs
it)."""

from __future__ import annotations

import json
import select
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.admin import PASSWORD, SECRET, csrf_of, text
from helpers.postgres import Server
from helpers.waiting import wait_until
from psycopg.conninfo import conninfo_to_dict
from werkzeug.test import Client

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials
from minion_daemon.backend import PgBackend

pytestmark = pytest.mark.interop

PERL_WORKER = Path(__file__).resolve().parents[1] / "interop" / "minion_worker.pl"


@pytest.fixture
def perl_database(
    make_database: Callable[[int | None], str], pg_server: Server
) -> Iterator[tuple[PgBackend, int, int]]:
    """A schema-23 database, a Perl worker on it (its id and pid), and our backend."""
    dsn = make_database(23)
    url = pg_server.url(str(conninfo_to_dict(dsn)["dbname"]))
    status = json.dumps({"dequeue_timeout": 0.2, "command_interval": 0.2, "heartbeat_interval": 1})
    perl = subprocess.Popen(["perl", str(PERL_WORKER), url, status], stdout=subprocess.PIPE)
    assert perl.stdout is not None
    readable, _, _ = select.select([perl.stdout], [], [], 30)
    line = perl.stdout.readline().decode() if readable else ""
    assert line.startswith("ready "), line
    backend = PgBackend(dsn, min_size=0, max_size=2, auto_migrate=False)
    yield backend, int(line.split()[1]), perl.pid
    perl.terminate()
    perl.communicate(timeout=15)
    backend.close()


def test_a_perl_worker_and_its_jobs_are_shown_and_reached(
    perl_database: tuple[PgBackend, int, int], password_hash: str
) -> None:
    backend, worker, pid = perl_database
    client = Client(AdminApp(backend, Credentials(password_hash, None), SECRET))
    client.post("/login", data={"password": PASSWORD})
    job_id = backend.enqueue("perl_upper", ["<i>shout</i>"])

    def finished() -> bool:
        return backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["state"] == "finished"

    wait_until(finished, 30, "the Perl worker to finish the job")
    workers = text(client.get("/workers"))
    assert f"<td>{worker}</td><td>{socket.gethostname()}</td><td>{pid}</td>" in workers
    page = text(client.get(f"/jobs/{job_id}"))
    assert "&lt;I&gt;SHOUT&lt;/I&gt;" in page
    assert "&#34;seen_by&#34;: &#34;perl&#34;" in page
    assert f"{worker}</a> on {socket.gethostname()}, pid {pid}" in page
    form = {"command": "jobs", "count": "0", "worker": str(worker), "csrf": csrf_of(client)}
    client.post("/workers/broadcast", data=form)

    def obeyed() -> bool:
        return backend.list_workers(0, 1, {"ids": [worker]})["workers"][0]["status"]["jobs"] == 0

    wait_until(obeyed, 30, "the Perl worker to take jobs 0")
    assert backend.schema_version == 23
