"""Tasks of the security tests, and the /proc reading they and the tests share.

The tasks run in the daemon's job processes, imported through entry points; the socket
description works for any process of ours: ``sockets(pid)`` lists the sockets it holds, each
with what /proc/PID/net says about it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from pathlib import Path
from typing import Any

#: TCP states of /proc/net/tcp, by their hexadecimal code.
TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def echo(job: Any, *args: Any) -> list[Any]:
    """Returns its arguments: the job's result is what its process received."""
    return list(args)


def open_sockets(job: Any) -> list[dict[str, Any]]:
    """Every socket this job process holds while its task runs."""
    return sockets("self")


def sockets(pid: int | str) -> list[dict[str, Any]]:
    """The sockets process ``pid`` holds: descriptor, inode, and for TCP the local and remote
    ``[host, port]`` and the state; empty once the process is gone."""
    known = {**_tcp(pid), **_unix(pid)}
    held = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue  # closed meanwhile (the descriptor of the listing itself, say)
            if target.startswith("socket:["):
                inode = int(target[len("socket:[") : -1])
                held.append({"fd": int(name), "inode": inode, **known.get(inode, {"kind": "?"})})
    return sorted(held, key=lambda entry: int(entry["fd"]))


def descendants(pid: int) -> list[int]:
    """The children of ``pid``, their children, and so on."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    children = [int(c) for c in (task / "children").read_text().split()]
                    found.extend(children)
                    pending.extend(children)
    return found


def _tcp(pid: int | str) -> dict[int, dict[str, Any]]:
    found = {}
    for kind in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{kind}").read_text(encoding="ascii").splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in lines:
            fields = line.split()
            found[int(fields[9])] = {
                "kind": kind,
                "local": _address(fields[1]),
                "remote": _address(fields[2]),
                "state": TCP_STATES.get(fields[3], fields[3]),
            }
    return found


def _address(text: str) -> list[Any]:
    """``[host, port]`` from /proc/net/tcp's form: hexadecimal 32-bit words in host order."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return [socket.inet_ntop(family, packed), int(port, 16)]


def _unix(pid: int | str) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    try:
        lines = Path(f"/proc/{pid}/net/unix").read_text(encoding="utf-8").splitlines()[1:]
    except (FileNotFoundError, ProcessLookupError):
        return found
    for line in lines:
        fields = line.split(maxsplit=7)
        found[int(fields[6])] = {"kind": "unix", "path": fields[7] if len(fields) > 7 else ""}
    return found
