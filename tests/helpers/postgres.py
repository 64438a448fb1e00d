"""Find or start the PostgreSQL server the tests use, and make databases on it.

Order of preference (DEVELOPERS.md): ``$MINION_DAEMON_TEST_DSN``; the local server on
127.0.0.1:5432 or /var/run/postgresql; a throwaway cluster made with initdb/pg_ctl (as an
unprivileged user when we are root, because PostgreSQL refuses to run as root); a
testcontainers container where Docker runs. Every database a run creates carries the run's
prefix and is dropped at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import conninfo as libpq
from psycopg import sql

LOCAL_CANDIDATES = (
    "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
    "host=/var/run/postgresql user=postgres dbname=postgres",
)


@dataclass
class Server:
    """A PostgreSQL server we may create databases on."""

    admin_dsn: str
    origin: str
    stop: Callable[[], None] = field(default=lambda: None)
    #: On this machine, so a run's process id in a database name tells whether it still runs.
    local: bool = False
    #: Restart the server (only for clusters the tests started themselves).
    restart: Callable[[], None] | None = None

    def dsn(self, dbname: str) -> str:
        return libpq.make_conninfo(self.admin_dsn, dbname=dbname)

    def url(self, dbname: str) -> str:
        """The same database as a postgresql:// URL, the form Perl's Mojo::Pg takes."""
        params = libpq.conninfo_to_dict(self.admin_dsn)
        user = quote(str(params.get("user", "postgres")), safe="")
        password = params.get("password")
        auth = f"{user}:{quote(str(password), safe='')}" if password else user
        host = quote(str(params.get("host", "localhost")), safe="")
        port = f":{params['port']}" if params.get("port") else ""
        return f"postgresql://{auth}@{host}{port}/{quote(dbname, safe='')}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_dsn, autocommit=True)


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def throwaway_cluster() -> Server | None:
    """A private cluster made with initdb and started with pg_ctl; ``None`` without them.

    The fault tests use one to restart PostgreSQL under a running worker.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        return None
    root = Path(tempfile.mkdtemp(prefix="minion-daemon-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL will not run as root; hand the directory to the postgres (or nobody) user.
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user=user)
        prefix = ["runuser", "-u", user, "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    control = [*prefix, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log")]
    subprocess.run([*control, "start"], check=True, capture_output=True)

    def restart() -> None:
        subprocess.run([*control, "-m", "fast", "restart"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    return Server(dsn, "a throwaway cluster (initdb)", stop, local=True, restart=restart)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _container() -> Server | None:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        return None
    try:
        container = PostgresContainer("postgres:15", driver=None).start()
    except Exception:  # noqa: BLE001 - no Docker engine: fall through to the next option
        return None
    dsn = libpq.make_conninfo(
        host=container.get_container_host_ip(),
        port=container.get_exposed_port(5432),
        user=container.username,
        password=container.password,
        dbname=container.dbname,
    )
    return Server(dsn, "a testcontainers container", container.stop)


def find_server() -> Server:
    """The first server of the preference order that answers; raises if none does."""
    configured = os.environ.get("MINION_DAEMON_TEST_DSN")
    if configured:
        return Server(configured, "$MINION_DAEMON_TEST_DSN")
    for dsn in LOCAL_CANDIDATES:
        if _answers(dsn):
            return Server(dsn, "the local server", local=True)
    for start in (throwaway_cluster, _container):
        server = start()
        if server is not None:
            return server
    raise RuntimeError(
        "no PostgreSQL for the tests: set MINION_DAEMON_TEST_DSN, run a local server,"
        " install PostgreSQL (initdb/pg_ctl) or run Docker"
    )


class Databases:
    """Databases of one test run: templates per schema version, copies per test."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.prefix = f"minion_daemon_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._count = 0
        self._templates: dict[int | None, str] = {}

    def create(self, version: int | None, migrate: Callable[[str, int], None]) -> str:
        """A fresh database at schema ``version`` (``None``: empty); returns its name."""
        template = self._template(version, migrate)
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        with self.server.admin() as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return name

    def _template(self, version: int | None, migrate: Callable[[str, int], None]) -> str:
        if version not in self._templates:
            name = f"{self.prefix}_template_{version or 'empty'}"
            with self.server.admin() as admin:
                admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
                )
            if version:
                migrate(self.server.dsn(name), version)
            self._templates[version] = name
        return self._templates[version]

    def drop(self, name: str) -> None:
        with self.server.admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def drop_stale(self) -> None:
        """Drop what runs on this machine left behind when they were killed."""
        with self.server.admin() as admin:
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'minion_daemon_test_%%'"
            ).fetchall()
        for (name,) in rows:
            pid = str(name).split("_")[3]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                self.drop(str(name))

    def drop_all(self) -> None:
        with self.server.admin() as admin:
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (self.prefix + "%",)
            ).fetchall()
        for (name,) in rows:
            self.drop(str(name))


# Everything about the schema a test could have changed, hashed: relations, columns, functions,
# triggers and the migration rows.
_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(c.relname || c.relkind::text || c.relpersistence::text, ',' ORDER BY c.relname)
     FROM pg_class AS c WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(
    a.attrelid::regclass::text || '.' || a.attname || a.atttypid::text || a.attnotnull::text,
                     ',' ORDER BY a.attrelid::regclass::text, a.attnum)
     FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(p.oid::regprocedure::text || md5(p.prosrc), ',' ORDER BY 1)
     FROM pg_proc AS p WHERE p.pronamespace = 'public'::regnamespace),
  (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(name || version::text, ',' ORDER BY name) FROM mojo_migrations)
))
"""

_EMPTY_TABLES = sql.SQL(
    "TRUNCATE minion_jobs, minion_locks, minion_schedules, minion_workers,"
    " minion_daemon_paused_queues, minion_daemon_unique_jobs RESTART IDENTITY"
)

_OTHER_SESSIONS = sql.SQL(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


class Reusable:
    """One database at the latest schema, emptied between tests instead of made anew.

    CREATE DATABASE costs about 0.3 s; TRUNCATE a few milliseconds. A test that changed the
    schema (the fingerprint differs) gets its database dropped, and the next test a new one.
    """

    def __init__(self, databases: Databases, make: Callable[[], str]) -> None:
        self._databases = databases
        self._make = make
        self._name: str | None = None
        self._fingerprint = ""

    def acquire(self) -> str:
        if self._name is None:
            self._name = self._make()
            self._fingerprint = self._read_fingerprint()
        return self._databases.server.dsn(self._name)

    def _read_fingerprint(self) -> str:
        assert self._name is not None
        with psycopg.connect(self._databases.server.dsn(self._name), autocommit=True) as conn:
            row = conn.execute(_FINGERPRINT).fetchone()
        return str(row[0]) if row else ""

    def release(self) -> None:
        if self._name is None:
            return
        with psycopg.connect(self._databases.server.dsn(self._name), autocommit=True) as conn:
            conn.execute(_OTHER_SESSIONS)
        try:
            unchanged = self._read_fingerprint() == self._fingerprint
        except psycopg.Error:
            unchanged = False
        if unchanged:
            with psycopg.connect(self._databases.server.dsn(self._name), autocommit=True) as conn:
                conn.execute(_EMPTY_TABLES)
        else:
            self._databases.drop(self._name)
            self._name = None


@contextlib.contextmanager
def run_server() -> Iterator[Databases]:
    server = find_server()
    databases = Databases(server)
    if server.local:
        databases.drop_stale()
    try:
        yield databases
    finally:
        databases.drop_all()
        server.stop()
