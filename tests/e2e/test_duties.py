"""The supervisor's duties: a duty whose statement fails leaves the fleet running."""

from __future__ import annotations

import json
import signal
from typing import Any

from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion

# Repair's first statement deletes missing workers; this makes every such statement fail
# (a statement-level trigger fires even when no row matches) while the switch is on.
BREAK_REPAIR = """
CREATE TABLE repair_switch (broken bool NOT NULL);
INSERT INTO repair_switch VALUES (true);
CREATE FUNCTION break_repair() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT broken FROM repair_switch) THEN
    RAISE EXCEPTION 'repair broken on purpose';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER break_repair BEFORE DELETE ON minion_workers
  FOR EACH STATEMENT EXECUTE FUNCTION break_repair();
"""
MEND_REPAIR = """
DROP TRIGGER IF EXISTS break_repair ON minion_workers;
DROP FUNCTION IF EXISTS break_repair();
DROP TABLE IF EXISTS repair_switch;
"""


def test_a_failing_repair_is_logged_and_the_daemon_keeps_working(
    start: Any, minion: Minion, dsn: str
) -> None:
    minion.stats()  # the schema, before the trigger goes on its table
    execute(dsn, BREAK_REPAIR)
    try:
        daemon, _ = start(repair={"interval": 1})
        wait_until(lambda: minion.stats()["workers"] == 2, 30)
        job_id = minion.enqueue("add", [2, 3])
        wait_until(
            lambda: minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["state"]
            == "finished",
            30,
            "the job, while repair fails",
        )
        gone = minion.backend.register_worker()
        execute(dsn, "UPDATE minion_workers SET notified = NOW() - INTERVAL '1 day' WHERE id = %s",
                [gone])
        execute(dsn, "UPDATE repair_switch SET broken = false")
        wait_until(
            lambda: not minion.backend.list_workers(0, 1, {"ids": [gone]})["workers"],
            30,
            "repair, mended, to remove a missing worker",
        )
        daemon.signal(signal.SIGTERM)
        code, errors = daemon.finish()
    finally:
        execute(dsn, MEND_REPAIR)
    assert code == 0, errors
    events = [json.loads(line) for line in errors.splitlines()]
    failed = [line for line in events if line["event"] == "supervisor.duty_failed"]
    assert failed, "the failed repair was not logged"
    assert "repair broken on purpose" in failed[0]["error"]
    assert failed[0]["level"] == "error"
    assert any(line["event"] == "repair.done" for line in events), "repair ran once mended"
