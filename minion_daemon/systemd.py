"""sd_notify(3) datagrams to systemd, with no dependency; every call is a no-op without systemd.

Only the supervisor talks to systemd: children call `forget_notify_socket()` in their bootstrap, so
a task can neither fake readiness nor feed the watchdog (the unit runs with NotifyAccess=main).
"""

from __future__ import annotations

import logging
import os
import socket

_log = logging.getLogger("minion_daemon.systemd")

_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def notify(*states: str) -> bool:
    """Send `states` as one datagram, one `KEY=value` per line, to `$NOTIFY_SOCKET`.

    Returns True when the datagram was sent; False when the variable is unset or empty, or when
    sending failed (logged at debug). Never raises: systemd being away must not stop the daemon.
    """
    name = os.environ.get("NOTIFY_SOCKET", "")
    if not name:
        return False
    # A leading "@" names a socket in the abstract namespace, whose address starts with NUL.
    address = "\0" + name[1:] if name.startswith("@") else name
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(states).encode(), address)
    except OSError as exc:
        _log.debug("systemd.notify_failed", extra={"socket": name, "error": str(exc)})
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) asks.

    None when the watchdog is off: the variable is unset, not a positive integer, or
    `$WATCHDOG_PID` is set and names another process (the value was meant for our parent).
    """
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
        pid = os.environ.get("WATCHDOG_PID")
        if usec <= 0 or (pid and int(pid) != os.getpid()):
            return None
    except ValueError:
        return None
    return usec / 2_000_000


def forget_notify_socket() -> None:
    """Drop the notify and watchdog variables from `os.environ`, so children do not inherit them."""
    for key in _INHERITED:
        os.environ.pop(key, None)


def _oneline(text: str) -> str:
    # A newline would end STATUS= early and let the rest pose as another assignment.
    return " ".join(text.splitlines())


def ready(status: str) -> bool:
    """Tell systemd that start-up (or a reload) is complete, with a human-readable status."""
    return notify("READY=1", f"STATUS={_oneline(status)}")


def stopping() -> bool:
    """Tell systemd that a shutdown has begun, so it waits for the exit instead of restarting."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Feed the watchdog; send at the pace of `watchdog_interval()`."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Update the status line shown by `systemctl status`."""
    return notify(f"STATUS={_oneline(text)}")
