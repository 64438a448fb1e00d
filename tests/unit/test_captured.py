"""A job's ``print`` and ``sys.stderr`` become ``job.output`` log lines with that job's fields,
through one stream a process keeps for all its inline jobs."""

from __future__ import annotations

import io
import json
import sys

from minion_daemon import logs
from minion_daemon.output import captured


def _output(log_lines: io.StringIO) -> list[tuple[object, str]]:
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    return [(line.get("job_id"), line["line"]) for line in lines if line["event"] == "job.output"]


def test_each_block_logs_its_lines_with_the_fields_bound_then(log_lines: io.StringIO) -> None:
    for job_id in (1, 2):
        with logs.bound(job_id=job_id), captured():
            print(f"line of job {job_id}")
            sys.stderr.write("no newline at the end")
    assert _output(log_lines) == [
        (1, "line of job 1"),
        (1, "no newline at the end"),
        (2, "line of job 2"),
        (2, "no newline at the end"),
    ]


def test_a_block_inside_another_keeps_each_ones_lines_apart(log_lines: io.StringIO) -> None:
    with logs.bound(job_id=1), captured():
        sys.stdout.write("outer starts ")
        with logs.bound(job_id=2), captured():
            print("inner")
        print("outer ends")
    assert _output(log_lines) == [(2, "inner"), (1, "outer starts outer ends")]
