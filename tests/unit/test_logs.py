"""Structured log lines: JSON or console, fields, bound context, and no DSN password."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from minion_daemon import logs


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_its_fields_pid_and_timestamp() -> None:
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    logs.get_logger("minion_daemon.test").info("job.finished", job_id=7, duration=0.25)
    [line] = _json_lines(stream)
    assert line["event"] == "job.finished"
    assert (line["job_id"], line["duration"], line["level"]) == (7, 0.25, "info")
    assert line["logger"] == "minion_daemon.test"
    assert isinstance(line["pid"], int)
    assert line["timestamp"].endswith("Z")


def test_auto_is_json_off_a_terminal_and_console_is_not_json() -> None:
    stream = io.StringIO()
    logs.configure("auto", "info", stream)
    logs.get_logger("x").info("one")
    assert _json_lines(stream)[0]["event"] == "one"
    console = io.StringIO()
    logs.configure("console", "info", console)
    logs.get_logger("x").info("worker.spawned", worker_pid=12)
    text = console.getvalue()
    assert "worker.spawned" in text
    assert "worker_pid=12" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_the_level_filters_and_standard_library_records_share_the_format() -> None:
    stream = io.StringIO()
    logs.configure("json", "warning", stream)
    logs.get_logger("x").info("hidden")
    logging.getLogger("psycopg.pool").warning("error connecting in %r", "pool-1")
    [line] = _json_lines(stream)
    assert (line["event"], line["logger"]) == ("error connecting in 'pool-1'", "psycopg.pool")


def test_bound_fields_appear_on_every_line_until_the_block_ends() -> None:
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    log = logs.get_logger("x")
    with logs.bound(job_id=3, task="add"):
        log.info("inside")
        logging.getLogger("a.task.of.the.user").info("the task speaks")
    log.info("outside")
    inside, task, outside = _json_lines(stream)
    assert (inside["job_id"], task["job_id"], task["task"]) == (3, 3, "add")
    assert "job_id" not in outside


@pytest.mark.parametrize("output", ["json", "console"])
def test_no_dsn_password_survives_in_fields_messages_or_tracebacks(output: str) -> None:
    stream = io.StringIO()
    logs.configure(output, "info", stream)
    log = logs.get_logger("x")
    try:
        raise ConnectionError("cannot reach postgresql://minion:s3cret-url@db/minion")
    except ConnectionError as error:
        log.exception("worker.database_unavailable", error=str(error), dsn="password=s3cret-kw")
    logging.getLogger("psycopg").warning("dsn %s", "host=db password='s3cret quoted'")
    text = stream.getvalue()
    assert "s3cret" not in text
    assert text.count("***") >= 4
    assert "ConnectionError" in text


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json, console"):
        logs.configure("xml")


def test_without_configure_nothing_is_printed_by_the_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger().handlers.clear()
    logs.get_logger("minion_daemon.worker").info("job.started", job_id=1)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


class _CountedWrites(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_batch_of_lines_is_one_write_when_it_ends_or_is_flushed() -> None:
    stream = _CountedWrites()
    logs.configure("json", "info", stream)
    log = logs.get_logger("minion_daemon.worker")
    with logs.batched():
        log.info("job.started", job_id=1)
        log.info("job.finished", job_id=1)
        assert stream.getvalue() == ""
        logs.flush()
        assert [line["event"] for line in _json_lines(stream)] == ["job.started", "job.finished"]
        assert stream.writes == 1
        log.info("job.started", job_id=2)
        log.debug("hidden")
    assert [line["job_id"] for line in _json_lines(stream)] == [1, 1, 2]
    assert stream.writes == 2
    log.info("alone")
    assert stream.writes == 3


def test_a_json_line_carries_the_same_fields_as_a_standard_library_record() -> None:
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    with logs.bound(worker_id=9):
        logs.get_logger("minion_daemon.worker").info("job.finished", job_id=4, error="x=1")
        logging.getLogger("minion_daemon.worker").info("job.finished", extra={"job_id": 4})
    ours, theirs = _json_lines(stream)
    assert set(ours) - {"error"} == set(theirs)
    assert (ours["pid"], ours["worker_id"], ours["logger"]) == (
        theirs["pid"],
        theirs["worker_id"],
        theirs["logger"],
    )
    stamped = datetime.datetime.strptime(ours["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert abs((now - stamped).total_seconds()) < 60


def test_a_forked_process_logs_its_own_pid() -> None:
    read, write = os.pipe()
    logs.configure("json", "info", os.fdopen(write, "w"))
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's lines are checked by the parent
        logs.get_logger("x").info("child")
        os._exit(0)
    os.waitpid(child, 0)
    logs.get_logger("x").info("parent")
    logging.getLogger().handlers[0].stream.close()
    with os.fdopen(read) as lines:
        pids = {json.loads(line)["event"]: json.loads(line)["pid"] for line in lines}
    assert pids == {"child": child, "parent": os.getpid()}
