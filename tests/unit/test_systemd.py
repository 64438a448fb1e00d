"""sd_notify datagrams against real AF_UNIX sockets, and the watchdog variables."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from minion_daemon import systemd


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test runner itself may run under systemd; never talk to the real manager.
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    # The datagram is queued before sendto() returns, so a non-blocking read never waits.
    sock.setblocking(False)
    return sock


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    with _receiver(str(path)) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def _received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_notify_sends_states_as_one_datagram(listener: socket.socket) -> None:
    assert systemd.notify("READY=1", "STATUS=2 workers, 0 jobs")
    assert _received(listener) == "READY=1\nSTATUS=2 workers, 0 jobs"


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"minion-daemon-test-{secrets.token_hex(8)}"
    with _receiver("\0" + name) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("WATCHDOG=1")
        assert _received(sock) == "WATCHDOG=1"


@pytest.mark.parametrize("value", [None, ""])
def test_notify_without_socket_is_a_no_op(
    value: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _receiver(str(tmp_path / "unused.sock")) as sock:
        if value is not None:
            monkeypatch.setenv("NOTIFY_SOCKET", value)
        assert not systemd.notify("READY=1")
        with pytest.raises(BlockingIOError):
            sock.recv(4096)


def test_notify_to_a_missing_socket_fails_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.DEBUG, logger="minion_daemon.systemd"):
        assert not systemd.notify("READY=1")
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_notify_to_a_non_socket_fails_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plain-file"
    path.write_text("")
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert not systemd.notify("READY=1")


def test_helpers_send_their_keys(listener: socket.socket) -> None:
    assert systemd.ready("1 worker")
    assert systemd.status("draining")
    assert systemd.stopping()
    assert systemd.watchdog()
    assert [_received(listener) for _ in range(4)] == [
        "READY=1\nSTATUS=1 worker",
        "STATUS=draining",
        "STOPPING=1",
        "WATCHDOG=1",
    ]


def test_status_text_cannot_inject_another_key(listener: socket.socket) -> None:
    assert systemd.status("ok\nREADY=1")
    assert _received(listener) == "STATUS=ok READY=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 15.0),
        ("30000000", "", 15.0),
        ("garbage", None, None),
        ("", None, None),
        ("0", None, None),
        ("-5", None, None),
        ("30000000", "not-a-pid", None),
        ("30000000", "other", None),
        ("30000000", "self", 15.0),
    ],
)
def test_watchdog_interval(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        pids = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}
        monkeypatch.setenv("WATCHDOG_PID", pids.get(pid, pid))
    assert systemd.watchdog_interval() == expected


def test_forget_notify_socket_clears_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    systemd.forget_notify_socket()
    assert {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}.isdisjoint(os.environ)
    assert not systemd.notify("READY=1")
    assert systemd.watchdog_interval() is None


def test_forget_notify_socket_without_variables_is_harmless() -> None:
    systemd.forget_notify_socket()
    assert "NOTIFY_SOCKET" not in os.environ


UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "minion-daemon.service"


def test_the_unit_restarts_on_failure_but_not_on_a_usage_error_or_a_crash_loop() -> None:
    """Exit 2 (a usage or configuration error) and exit 3 (worker processes that cannot boot)
    would only fail again: Restart=on-failure must not restart forever on them."""
    settings = [
        line.partition("=")[::2]
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    ]
    assert ("Restart", "on-failure") in settings
    prevented = {
        int(code)
        for key, value in settings
        if key == "RestartPreventExitStatus"
        for code in value.split()
    }
    assert prevented == {2, 3}
