"""A private PostgreSQL cluster, so that ``minion-daemon run`` works with no database configured.

A newcomer should get a working queue from one command, without first installing, configuring
and securing a PostgreSQL server. With no DSN given anywhere, the daemon makes a cluster of its
own under a state directory with the machine's server binaries (``initdb``, ``pg_ctl``),
starts it and uses it; the data stay there from one run to the next.

The cluster listens on a unix socket in ``<state dir>/run`` and never on TCP, so nothing is
exposed on the network and no port can collide with another server's. Local connections are
trusted: the socket's directory is mode 0700, so only its owner (and root) can reach it.

PostgreSQL refuses to run as root. A daemon running as root runs ``initdb`` and ``pg_ctl`` as
the owner of the state directory instead, and connects as the cluster's superuser role, which
trust authentication over the socket allows.

Several processes may use one cluster at once (``minion-daemon run`` beside a ``migrate``, say):
each holds a shared ``flock`` on the data directory while it uses the cluster, and whoever
leaves last stops it. A lock dies with its process, so a postmaster left running by a daemon
that was killed has no users: the next start adopts it as it is and stops it on a clean exit.
Only the process that took a lock holds it: forked children (worker and job processes, which
outlive a supervisor killed with kill -9 while they finish) close their copy, or they would
keep a cluster they no longer own from ever being stopped. Starts and stops are serialised by
an exclusive ``flock`` on the state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import conninfo, sql

from minion_daemon import logs
from minion_daemon.errors import MinionError

log = logs.get_logger("minion_daemon.embedded_pg")

#: Chooses the state directory for ``run`` and the commands that use its cluster alike.
STATE_DIR_ENVIRONMENT_VARIABLE = "MINION_DAEMON_STATE_DIR"
#: The role initdb makes the cluster's superuser; the DSN connects as it. A fixed name rather
#: than the OS user that ran initdb, so that chowning the state directory to another user later
#: cannot leave the daemon guessing which role exists.
SUPERUSER = "postgres"
#: Fixed: the socket has a directory of its own, so the port only names the socket file.
PORT = 5432
_SOCKET_NAME = f".s.PGSQL.{PORT}"
#: ``sockaddr_un.sun_path`` holds 108 bytes on Linux, the terminating NUL included.
_SOCKET_PATH_MAX = 107
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_TAIL_LINES = 10
_LOG_TAIL_BYTES = 64 * 1024
_CONNECT_TIMEOUT = 10


#: The descriptors holding this process's shared locks on data directories.
_held_locks: set[int] = set()


def _close_inherited_locks() -> None:
    """In a forked child: close the copies of the parent's locks (the parent keeps them)."""
    for descriptor in _held_locks:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _held_locks.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class EmbeddedDatabaseError(MinionError):
    """The private cluster cannot be made, started or stopped; the message says why and the fix."""


def find_binaries(
    search_path: str | None = None,
    roots: Sequence[Path] = (Path("/usr/lib/postgresql"),),
) -> Path:
    """The directory holding both ``initdb`` and ``pg_ctl``.

    The one of ``initdb`` on ``PATH`` (``search_path`` instead, when given) comes first, else the
    highest version of ``<root>/<version>/bin`` (compared numerically: 9.6 < 15 < 16).
    Raises :class:`EmbeddedDatabaseError` when neither holds both.
    """
    initdb = shutil.which("initdb", path=search_path)
    if initdb and _holds_binaries(Path(initdb).parent):
        return Path(initdb).parent
    candidates = [
        directory
        for root in roots
        for directory in root.glob("*/bin")
        if _VERSION.fullmatch(directory.parent.name) and _holds_binaries(directory)
    ]
    if candidates:
        return max(candidates, key=lambda directory: _version(directory.parent.name))
    places = "".join(f" or under {root}/*/bin" for root in roots)
    raise EmbeddedDatabaseError(
        f"no PostgreSQL server binaries (initdb, pg_ctl) found on PATH{places}: install them"
        " (e.g. apt-get install postgresql) or give a database with --dsn, MINION_DAEMON_DSN"
        " or postgres.dsn"
    )


def _holds_binaries(directory: Path) -> bool:
    return all(shutil.which(name, path=str(directory)) for name in ("initdb", "pg_ctl"))


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def default_state_dir() -> Path:
    """Where the cluster lives by default.

    ``$MINION_DAEMON_STATE_DIR`` if set, else ``/var/lib/minion-daemon`` for root, else
    ``$XDG_DATA_HOME/minion-daemon``, else ``~/.local/share/minion-daemon``.
    """
    if chosen := os.environ.get(STATE_DIR_ENVIRONMENT_VARIABLE):
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/lib/minion-daemon")
    data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative path is invalid and must be ignored.
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "minion-daemon"


@dataclass(frozen=True)
class _Account:
    """The unprivileged user that runs initdb and pg_ctl for a daemon running as root."""

    uid: int
    gid: int
    groups: tuple[int, ...]


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``state_dir``, made on first start and kept from run to run.

    ``start()`` makes, starts or joins the cluster and returns its DSN; ``stop()`` leaves it and
    stops it unless another process still uses it. As a context manager, ``with`` does both.
    Every failure raises :class:`EmbeddedDatabaseError`.
    """

    def __init__(
        self, state_dir: Path, *, binaries: Path | None = None, database: str = "minion"
    ) -> None:
        self.state_dir = state_dir.absolute()
        self.database = database
        self._binaries = binaries
        self._pgdata = self.state_dir / "pgdata"
        self._socket_dir = self.state_dir / "run"
        self._log = self.state_dir / "postgresql.log"
        self._account: _Account | None = None
        #: The descriptor holding our shared lock on the data directory while we use the cluster.
        self._use: int | None = None

    @property
    def dsn(self) -> str:
        """The libpq DSN (keyword form) of the cluster's database, valid while it runs."""
        return conninfo.make_conninfo(
            host=str(self._socket_dir), port=PORT, dbname=self.database, user=SUPERUSER
        )

    @property
    def serving(self) -> bool:
        """Whether a server listens on the cluster's socket (somebody started it and it runs).

        For commands that use a daemon's cluster without starting or stopping it; a socket file
        left by a server that was killed counts too, and connecting then says so.
        """
        return (self._socket_dir / _SOCKET_NAME).exists()

    def start(self) -> str:
        """Make the cluster if it is new, start it unless it runs, create the database; the DSN.

        A postmaster already running on the data directory is used as it is. Calling ``start``
        again before ``stop`` does nothing.
        """
        if self._use is not None:
            return self.dsn
        self._check_socket_path()
        if self._binaries is None:
            self._binaries = find_binaries()
        self._account = self._prepare_state_dir()
        with self._transition():
            self._prepare_socket_dir()
            if not (self._pgdata / "PG_VERSION").exists():
                self._initdb()
                log.info("embedded_pg.created", state_dir=str(self.state_dir))
            running = self._running()
            if not running:
                self._start_server()
            log.info("embedded_pg.started", state_dir=str(self.state_dir), was_running=running)
            use = _lock(self._pgdata, fcntl.LOCK_SH)
            try:
                self._create_database()
            except EmbeddedDatabaseError:
                self._leave(use)
                raise
            self._use = use
            _held_locks.add(use)
        return self.dsn

    def stop(self) -> None:
        """Stop using the cluster; stop it (``pg_ctl stop -m fast``) unless others still use it.

        Idempotent. Once pg_ctl stopped the cluster, its server processes have ended (the
        postmaster removes ``postmaster.pid`` as its last act, which pg_ctl waits for).
        """
        use, self._use = self._use, None
        if use is not None:
            _held_locks.discard(use)
            with self._transition():
                self._leave(use)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_socket_path(self) -> None:
        socket = self._socket_dir / _SOCKET_NAME
        size = len(os.fsencode(socket))
        if size > _SOCKET_PATH_MAX:
            raise EmbeddedDatabaseError(
                f"the embedded database's socket path {socket} is {size} bytes, more than the"
                f" {_SOCKET_PATH_MAX} a unix socket allows: use a shorter state directory"
            )

    def _prepare_state_dir(self) -> _Account | None:
        """Create the state directory; the account to run PostgreSQL as when we are root."""
        new = not self.state_dir.exists()
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if new and os.geteuid() == 0:
                self._hand_to_server_account()
            owner = self.state_dir.stat().st_uid
        except OSError as error:
            raise EmbeddedDatabaseError(
                f"cannot create the state directory of the embedded database: {error}"
            ) from error
        if os.geteuid() != 0:
            return None
        if owner == 0:
            raise EmbeddedDatabaseError(
                f"the embedded database cannot run as root: chown the state directory"
                f" {self.state_dir} to an unprivileged user (e.g. chown postgres:"
                f" {self.state_dir}) or give a database with --dsn, MINION_DAEMON_DSN"
                " or postgres.dsn"
            )
        try:
            entry = pwd.getpwuid(owner)
        except KeyError:
            raise EmbeddedDatabaseError(
                f"the owner (uid {owner}) of the state directory {self.state_dir} has no user"
                " account: chown it to an existing unprivileged user"
            ) from None
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        return _Account(entry.pw_uid, entry.pw_gid, tuple(groups))

    def _hand_to_server_account(self) -> None:
        """Give a state directory root just made to the ``postgres`` account, if there is one.

        PostgreSQL refuses to run as root, and Debian's server packages create that account
        for exactly this; so a newcomer running the daemon as root needs no chown. A directory
        that already existed is left to its owner's decision.
        """
        try:
            account = pwd.getpwnam(SUPERUSER)
        except KeyError:
            return
        os.chown(self.state_dir, account.pw_uid, account.pw_gid)

    def _prepare_socket_dir(self) -> None:
        try:
            self._socket_dir.mkdir(mode=0o700, exist_ok=True)
            # Trust authentication makes this mode the socket's only guard.
            os.chmod(self._socket_dir, 0o700)
            if self._account is not None:
                os.chown(self._socket_dir, self._account.uid, self._account.gid)
        except OSError as error:
            raise EmbeddedDatabaseError(
                f"cannot use the state directory {self.state_dir}: {error}"
            ) from error

    def _initdb(self) -> None:
        options = ["--auth-local=trust", "--auth-host=reject", "--encoding=UTF8", "--locale=C"]
        self._run("initdb", f"--pgdata={self._pgdata}", f"--username={SUPERUSER}", *options)

    def _start_server(self) -> None:
        # pg_ctl hands -o to a shell, hence shlex; unix_socket_directories is a comma-separated
        # list, in which a double-quoted entry may hold any character.
        directory = '"' + str(self._socket_dir).replace('"', '""') + '"'
        settings = {"listen_addresses": "", "port": PORT, "unix_socket_directories": directory}
        options = shlex.join(f"-c{name}={value}" for name, value in settings.items())
        data, log = str(self._pgdata), str(self._log)
        self._run("pg_ctl", "start", "-w", "-D", data, "-l", log, "-o", options)

    @contextlib.contextmanager
    def _transition(self) -> Iterator[None]:
        """Hold the state directory's exclusive lock: one start or stop at a time."""
        try:
            descriptor = _lock(self.state_dir, fcntl.LOCK_EX)
        except OSError as error:
            raise EmbeddedDatabaseError(
                f"cannot lock the state directory {self.state_dir}: {error}"
            ) from error
        try:
            yield
        finally:
            os.close(descriptor)

    def _leave(self, use: int) -> None:
        """Give up our shared lock; stop the cluster if nobody else holds one."""
        # Our shared lock turns exclusive only when no other user holds one, and nobody can
        # join meanwhile: joining takes the transition lock, which our caller holds.
        try:
            fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("embedded_pg.left_running", state_dir=str(self.state_dir), reason="in use")
        else:
            if self._running():
                self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self._pgdata))
            log.info("embedded_pg.stopped", state_dir=str(self.state_dir))
        finally:
            os.close(use)

    def _running(self) -> bool:
        # pg_ctl status: 0 running, 3 not running (a stale postmaster.pid included).
        return self._command("pg_ctl", "status", "-D", str(self._pgdata)).returncode == 0

    def _create_database(self) -> None:
        try:
            with psycopg.connect(self.dsn, connect_timeout=_CONNECT_TIMEOUT):
                return
        except psycopg.OperationalError:
            pass  # most likely missing; creating it says so when it is something else
        maintenance = conninfo.make_conninfo(self.dsn, dbname="postgres")
        try:
            with psycopg.connect(
                maintenance, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
            ) as connection:
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                )
        except psycopg.Error as error:
            raise EmbeddedDatabaseError(
                f"cannot create database {self.database!r} in the embedded database in"
                f" {self.state_dir}: {str(error).strip()}"
            ) from error

    def _run(self, program: str, *arguments: str) -> None:
        """Run ``program`` of the server binaries; raise with its output and the log on failure."""
        action = " ".join([program, *arguments[:1]]) if program == "pg_ctl" else program
        log_offset = _size(self._log)
        result = self._command(program, *arguments)
        if result.returncode != 0:
            lines = _tail(result.stdout) + _tail(_read_from(self._log, log_offset))
            raise EmbeddedDatabaseError(
                f"{action} failed (exit status {result.returncode}) for the embedded database"
                f" in {self.state_dir}" + "".join(f"\n  {line}" for line in lines)
            )

    def _command(self, program: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        assert self._binaries is not None, "start() resolves the binaries first"
        account = self._account
        try:
            return subprocess.run(
                [str(self._binaries / program), *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                check=False,
                # The account must be able to enter its working directory (initdb checks).
                cwd=self.state_dir,
                # A Ctrl-C meant for the daemon must not reach the database under it.
                start_new_session=True,
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=account.groups if account else None,
            )
        except OSError as error:
            raise EmbeddedDatabaseError(f"cannot run {program}: {error}") from error


def _lock(path: Path, operation: int) -> int:
    """A new descriptor of ``path`` holding ``flock(operation)``; closing it unlocks."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, operation)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    """What was written to ``path`` since ``offset`` (its last 64 KiB at most)."""
    try:
        with path.open("rb") as file:
            file.seek(max(offset, _size(path) - _LOG_TAIL_BYTES))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()][-_TAIL_LINES:]
