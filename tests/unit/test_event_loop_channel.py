"""The worker's end of its event-loop process: what it reads when the process is gone."""

from __future__ import annotations

import socket

from minion_daemon.runners.asyncio_runner import _EventLoopProcess
from minion_daemon.runners.forkserver import frame


def test_the_last_messages_of_a_process_that_died_are_read_before_its_end() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    process = _EventLoopProcess(0, mine)
    theirs.sendall(frame(["ended", 7, "result", 42]))
    theirs.close()
    assert process.receive() == [["ended", 7, "result", 42]]
    assert process.receive() is None
    mine.close()
