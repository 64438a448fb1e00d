"""The worker id a worker process announces on its liveness pipe, as the supervisor reads it."""

from __future__ import annotations

from minion_daemon.worker.process import read_worker_id


def test_an_id_between_pings_is_found() -> None:
    assert read_worker_id(b"..id=42\n...") == (42, b"...")


def test_an_id_cut_by_a_read_is_completed_by_the_next() -> None:
    announced, unread = read_worker_id(b"...id=4")
    assert announced is None
    assert read_worker_id(unread + b"2\n.") == (42, b".")


def test_pings_alone_keep_no_more_than_a_message_could_need() -> None:
    assert read_worker_id(b"." * 4096) == (None, b"." * 32)
