"""Metrics are served on the loopback interface only, unless configured otherwise.

The defaults say ``127.0.0.1:9464`` (config.py and config/example.yaml); the real daemon,
started without a ``metrics`` section, listens there and nowhere else: its processes hold one
listening TCP socket, bound to 127.0.0.1, and the machine's other addresses refuse the port.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import DEFAULT_METRICS_PORT
from helpers.security_tasks import descendants, sockets
from helpers.waiting import wait_until

from minion_daemon.config import Config, load_config

DEFAULT = ("127.0.0.1", 9464)
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def test_the_default_metrics_address_is_loopback() -> None:
    assert Config().metrics.listen == "127.0.0.1:9464"
    assert load_config(EXAMPLE, environ={}).metrics.listen == "127.0.0.1:9464"


def _port_is_free(address: tuple[str, int]) -> bool:
    """Whether the daemon could listen there. As the daemon's own socket does, the probe
    ignores TIME_WAIT connections (the scrapes of a run a minute ago): only a listener or
    a bound socket takes the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def _answers(address: tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=2):
        return True
    return False


def _served(address: tuple[str, int]) -> bool:
    """Whether the metrics process answers HTTP there (the supervisor's bound socket accepts
    connections into its backlog before that process runs)."""
    url = f"http://{address[0]}:{address[1]}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 before the first heartbeat: served all the same
    except OSError:
        return False


def _other_addresses() -> list[str]:
    """This machine's addresses other than loopback ones (``hostname -I``, else none)."""
    try:
        output = subprocess.run(
            ["hostname", "-I"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [address for address in output.split() if not address.startswith(("127.", "::1"))]


def _listening(pids: list[int]) -> dict[int, set[tuple[str, int]]]:
    """The TCP addresses each of ``pids`` listens on."""
    return {
        pid: {
            (entry["local"][0], entry["local"][1])
            for entry in sockets(pid)
            if entry.get("state") == "LISTEN"
        }
        for pid in pids
    }


@pytest.mark.xdist_group(DEFAULT_METRICS_PORT)
def test_the_daemon_serves_metrics_on_loopback_by_default(start_daemon: Any, dsn: str) -> None:
    # A failure, not a skip: the default address is what this test is about.
    assert _port_is_free(("0.0.0.0", DEFAULT[1])), (  # noqa: S104 - probing every interface
        f"port {DEFAULT[1]} is taken on this machine: stop what holds it to run this test"
    )
    daemon = start_daemon(
        {
            "postgres": {"dsn": dsn},
            "workers": {"processes": 1, "dequeue_timeout": 1},
            "shutdown": {"graceful_timeout": 5},
            # Its own socket would be one more here; tests/admin checks where it listens.
            "admin": {"enabled": False},
        }
    )
    wait_until(lambda: _served(DEFAULT) or daemon.process.poll() is not None, 30, "metrics")
    assert daemon.process.poll() is None, daemon.finish()[1]
    pids = [daemon.process.pid, *descendants(daemon.process.pid)]
    held = _listening(pids)
    assert set().union(*held.values()) == {DEFAULT}, held
    # The supervisor and the metrics process; no worker, no job.
    assert len([pid for pid, addresses in held.items() if addresses]) == 2, held
    for address in _other_addresses():
        assert not _answers((address, DEFAULT[1])), f"metrics answer on {address}"
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
