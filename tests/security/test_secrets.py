"""A DSN password never shows: not in check-config, errors, or the daemon's logs.

The password is random letters, so that no six of them in a row turn up in any output by
chance; every check looks for any such piece of it, not only the whole. Both DSN forms are
used: ``password=...`` keywords and ``postgresql://user:password@host/db`` URLs. The test
server trusts its clients, so a password added to its DSN is never asked for; where the test
DSN already carries one, that real password is the one that must not show.
"""

from __future__ import annotations

import json
import secrets
import signal
import string
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from helpers.daemon import free_port
from psycopg import conninfo

from minion_daemon import Minion
from minion_daemon.admin.auth import hash_password
from minion_daemon.cli import main

PASSWORD = "".join(secrets.choice(string.ascii_letters) for _ in range(20))

#: A closed port: the connection is refused at once.
CLOSED = {"host": "127.0.0.1", "port": "1", "dbname": "minion", "user": "app"}


def _keyword(params: dict[str, str], password: str = PASSWORD) -> str:
    return conninfo.make_conninfo(**params, password=password)


def _url(params: dict[str, str], password: str = PASSWORD, *, encode: bool = True) -> str:
    secret = quote(password, safe="") if encode else password
    host = quote(params.get("host", "localhost"), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    user = quote(params.get("user", "postgres"), safe="")
    return f"postgresql://{user}:{secret}@{host}{port}/{quote(params['dbname'], safe='')}"


def assert_no_secret(text: str, secret: str = PASSWORD) -> None:
    """Neither the password nor any six characters of it in a row."""
    pieces = [secret[i : i + 6] for i in range(len(secret) - 5)] or [secret]
    leaked = [piece for piece in pieces if piece in text]
    assert not leaked, f"password pieces {leaked} in:\n{text}"


def _run(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minion_daemon", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# check-config


@pytest.mark.parametrize("form", [_keyword, _url], ids=["keyword", "url"])
def test_check_config_prints_the_dsn_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: Any
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"postgres": {"dsn": form(CLOSED)}}), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    printed = capsys.readouterr()
    assert_no_secret(printed.out + printed.err)
    assert "***" in yaml.safe_load(printed.out)["postgres"]["dsn"]


@pytest.mark.parametrize("form", [_keyword, _url], ids=["keyword", "url"])
def test_check_config_prints_the_listen_dsn_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: Any
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"postgres": {"listen_dsn": form(CLOSED)}}), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    printed = capsys.readouterr()
    assert_no_secret(printed.out + printed.err)
    assert "***" in yaml.safe_load(printed.out)["postgres"]["listen_dsn"]


def test_check_config_prints_the_admin_password_hash_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hash is not the password, but it lets anyone who reads it guess offline."""
    hashed = hash_password(PASSWORD)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"admin": {"password_hash": hashed}}), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    printed = capsys.readouterr()
    assert_no_secret(printed.out + printed.err, hashed.rsplit("$", 1)[-1])
    assert yaml.safe_load(printed.out)["admin"]["password_hash"] == "***"


BROKEN_CONFIGS = {
    # PyYAML's messages quote the lines around the mistake.
    "unterminated quote": f'postgres:\n  dsn: "{_url(CLOSED)}\n',
    "bad flow after the dsn": f"postgres: {{dsn: '{_url(CLOSED)}', pool_min_size: [}}\n",
    "bad flow after a keyword dsn": f"postgres: {{dsn: '{_keyword(CLOSED)}', x: [}}\n",
    # The checks quote the value they refuse.
    "a NUL in the dsn": f'postgres:\n  dsn: "{_keyword(CLOSED)}\\0"\n',
    "a lone surrogate in the dsn": f'postgres:\n  dsn: "{_url(CLOSED)}\\ud800"\n',
    "an unknown key next to it": f"postgres:\n  dsn: '{_url(CLOSED)}'\n  dns: 1\n",
    "a bad timestamp after it": f"postgres:\n  dsn: '{_url(CLOSED)}'\n  x: 2001-02-30\n",
}


@pytest.mark.parametrize("text", BROKEN_CONFIGS.values(), ids=BROKEN_CONFIGS.keys())
def test_check_config_errors_never_show_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith(f"minion-daemon: {path}: "), printed.err
    assert printed.err.count("\n") == 1, printed.err
    assert_no_secret(printed.out + printed.err)


# Errors of the commands that reach for the database


BAD_DSNS = {
    "keyword, closed port": _keyword(CLOSED),
    "url, closed port": _url(CLOSED),
    "keyword, unknown host": _keyword(CLOSED | {"host": "no-such-host.invalid"}),
    "url, unknown host": _url(CLOSED | {"host": "no-such-host.invalid"}),
    # libpq quotes the piece of a DSN it cannot parse: here, the password itself.
    "url, password not percent-encoded": _url(CLOSED, f"{PASSWORD}%zz", encode=False),
    "url, password parameter not percent-encoded": _url(CLOSED, "x", encode=False)
    + f"?password={PASSWORD}%zz",
    "url, bad IPv6 host": f"postgresql://app:{PASSWORD}@[::1/minion",
    "keyword, bad port": _keyword(CLOSED | {"port": "http"}),
}


@pytest.mark.parametrize("dsn", BAD_DSNS.values(), ids=BAD_DSNS.keys())
def test_migrate_errors_never_show_the_password(dsn: str) -> None:
    result = _run("migrate", "--dsn", dsn)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("minion-daemon: "), result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout + result.stderr)


def _daemon_settings(dsn: str) -> dict[str, Any]:
    return {
        "postgres": {"dsn": dsn, "connect_timeout": 2},
        "workers": {"processes": 1, "dequeue_timeout": 1, "heartbeat_interval": 1},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "shutdown": {"graceful_timeout": 5},
    }


UNREACHABLE = {
    key: BAD_DSNS[key]
    for key in ("keyword, closed port", "url, closed port", "url, password not percent-encoded")
}


@pytest.mark.parametrize("dsn", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_the_daemon_never_shows_the_password_of_a_database_it_cannot_reach(
    start_daemon: Any, dsn: str
) -> None:
    daemon = start_daemon(_daemon_settings(dsn))
    code, errors = daemon.finish(timeout=60)
    assert code == 1, errors
    assert "minion-daemon: connect: " in errors, errors
    assert_no_secret(errors)


def _password_dsn(dsn: str, form: str) -> tuple[str, str]:
    """The test database's DSN with a password in ``form``, and the password to look for: the
    real one when the DSN has one (the server checks it), else :data:`PASSWORD`."""
    params = {key: str(value) for key, value in conninfo.conninfo_to_dict(dsn).items()}
    password = params.pop("password", PASSWORD)
    if form == "keyword":
        return _keyword(params, password), password
    return _url(params, password), password


@pytest.mark.parametrize("form", ["keyword", "url"])
def test_the_daemon_logs_never_show_the_password(
    start_daemon: Any, minion: Minion, dsn: str, form: str
) -> None:
    """Debug-level JSON logs of a start, a job, a reload and a stop."""
    with_password, password = _password_dsn(dsn, form)
    daemon = start_daemon(_daemon_settings(with_password))
    job_id = minion.enqueue("echo", [with_password])
    info = minion.result(job_id, timeout=30)
    assert info is not None
    assert info["state"] == "finished", info
    daemon.signal(signal.SIGHUP)
    minion.result(minion.enqueue("echo", ["after the reload"]), timeout=30)
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    events = [json.loads(line)["event"] for line in errors.splitlines()]
    assert {"supervisor.started", "job.finished", "config.reloaded"} <= set(events), events
    assert_no_secret(errors, password)
