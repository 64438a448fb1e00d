"""A PgBouncer in transaction pooling mode in front of the test server.

Debian's ``pgbouncer`` (tests/run installs it), started by the tests as a process of their own
with an ini file in a temporary directory, on a free port: the system service the package may
start on 6432 is never used. Clients need no password (``auth_type = any``): every database
logs in to the server as the test server's own user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import conninfo as libpq

from helpers.daemon import free_port
from helpers.postgres import Server, _user_exists


@dataclass(frozen=True)
class PgBouncer:
    port: int
    version: str
    server: Server

    def dsn(self, dbname: str) -> str:
        """``dbname`` of the test server, through this PgBouncer."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user=minion connect_timeout=5"


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ini(server: Server, port: int, pool_size: int) -> str:
    params = libpq.conninfo_to_dict(server.admin_dsn)
    target = " ".join(
        f"{key}={_quoted(str(params[key]))}"
        for key in ("host", "port", "user", "password")
        if params.get(key)
    )
    return f"""[databases]
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
server_reset_query =
"""


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@contextlib.contextmanager
def running_pgbouncer(server: Server, *, pool_size: int = 10) -> Iterator[PgBouncer]:
    """A PgBouncer of ``pool_size`` server connections per database, stopped at the end."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        raise RuntimeError("pgbouncer is missing: apt-get install pgbouncer (tests/run does)")
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout.split("\n")[0]
    root = Path(tempfile.mkdtemp(prefix="minion-daemon-pgbouncer-"))
    port = free_port()
    ini = root / "pgbouncer.ini"
    ini.write_text(_ini(server, port, pool_size), encoding="utf-8")
    command = [binary, str(ini)]
    if os.geteuid() == 0:
        # PgBouncer will not run as root; it reads the ini first, then becomes this user.
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user=user)
        command = [binary, "-u", user, str(ini)]
    log = (root / "log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(port, version, server)
    try:
        deadline = time.monotonic() + 15
        while not _answers(bouncer.dsn("postgres")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start: {(root / 'log').read_text()}")
            time.sleep(0.1)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
