"""`minion-daemon job` and `minion-daemon schedule` against a real database.

The commands run in-process through ``cli.main`` (a few as real subprocesses), and what they
did is read back through the API. Where Perl's own ``minion job`` can run (Debian's Minion
10.25, schema 23), its output for the same database is compared with ours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from helpers.postgres import Server
from helpers.sql import execute
from psycopg.conninfo import conninfo_to_dict

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.backend.migrate import migrate
from minion_daemon.cli import main
from minion_daemon.cli_jobs.output import rfc3339

TESTS = Path(__file__).resolve().parents[1]
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(dsn: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("job", "-s")``: the command on the test database; (exit code, stdout, stderr)."""

    def run_command(command: str, *arguments: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([command, "--dsn", dsn, *arguments])
        out, err = capsys.readouterr()
        return code, out, err

    return run_command


def _ok(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert code == 0, err
    return out


def _failed(minion: Minion, job_id: int, error: str = "boom") -> None:
    """Fail the (inactive, first-try) job with ``error``, as a worker would."""
    worker = minion.backend.register_worker()
    assert minion.backend.dequeue(worker, 0, {"id": job_id, "queues": ["default", "q2"]})
    assert minion.backend.fail_job(job_id, 0, error)


def test_enqueue_with_every_option_round_trips(run: Run, minion: Minion) -> None:
    first, second = minion.enqueue("parent"), minion.enqueue("parent")
    out = _ok(run(
        "job", "-e", "add", "-a", '[1, "two"]', "-A", "3", "-d", "100", "-E", "600",
        "-n", '{"k": [1, null]}', "-P", str(first), "-P", str(second), "-p", "7",
        "-q", "first", "-q", "important", "-x", "1",
    ))
    job_id = int(out)
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert (info["args"], info["attempts"], info["notes"]) == ([1, "two"], 3, {"k": [1, None]})
    assert (info["parents"], info["priority"], info["queue"]) == ([first, second], 7, "important")
    assert info["lax"] is True
    assert info["delayed"] - info["created"] == pytest.approx(100, abs=1)
    assert info["expires"] is not None
    assert info["expires"] - info["created"] == pytest.approx(600, abs=1)

    text = _ok(run("job", str(job_id)))
    assert re.search(r"^created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", text, re.MULTILINE)
    shown = yaml.safe_load(text)
    assert list(shown) == sorted(shown), "keys sorted, as YAML::XS writes them"
    assert shown["parents"] == [str(first), str(second)], "Perl shows bigint[] as strings"
    assert (shown["id"], shown["lax"], shown["state"]) == (job_id, 1, "inactive")
    assert (shown["finished"], shown["result"]) == (None, None)
    as_json = json.loads(_ok(run("job", "--json", str(job_id))))
    assert {k: v for k, v in as_json.items() if k != "time"} == {
        k: v for k, v in info.items() if k != "time"
    }


def test_enqueue_unique_prints_the_holders_id(run: Run, minion: Minion) -> None:
    first = int(_ok(run("job", "-e", "report", "-u", "report:daily")))
    assert int(_ok(run("job", "-e", "report", "-a", "[2]", "-u", "report:daily"))) == first
    assert len(minion.enqueued(task="report")) == 1
    worker = minion.backend.register_worker()
    assert minion.backend.dequeue(worker, 0, {"id": first})
    assert minion.backend.finish_job(first, 0)
    windowed = ("-u", "report:daily", "--unique-for", "3600")
    assert int(_ok(run("job", "-e", "report", *windowed))) == first, "created within the hour"
    assert int(_ok(run("job", "-e", "report", "-u", "report:daily"))) != first, "finished"


def test_enqueue_unique_refuses_a_window_without_a_key(run: Run, minion: Minion) -> None:
    assert run("job", "-e", "report", "--unique-for", "60") == (
        2, "", "minion-daemon: --unique-for needs -u/--unique KEY, the key it holds\n"
    )  # fmt: skip
    code, _, err = run("job", "-e", "report", "-u", "k", "--unique-for", "soon")
    assert (code, err) == (2, "minion-daemon: --unique-for expects an integer, got 'soon'\n")
    assert minion.enqueued(task="report") == []


def test_enqueue_unique_without_our_tables_says_to_migrate(
    make_database: Callable[[int | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(None)
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        migrate(conn, 23)
    assert main(["job", "--dsn", dsn, "-e", "report", "-u", "k"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("minion-daemon: enqueue: minion-daemon's own tables are missing")
    assert "run `minion-daemon migrate`" in err
    assert execute(dsn, "SELECT count(*) FROM minion_jobs") == [(0,)]


def test_listing_filters_and_paging(run: Run, minion: Minion) -> None:
    one = minion.enqueue("a", queue="q1", notes={"x": 1})
    two = minion.enqueue("b", queue="q2")
    three = minion.enqueue("a", queue="q2", notes={"y": 2})
    _failed(minion, two)

    table = f"{three}  inactive  q2  a\n{two}  failed    q2  b\n{one}  inactive  q1  a\n"
    assert _ok(run("job")) == table

    def ids(*arguments: str) -> list[int]:
        return [int(line.split()[0]) for line in _ok(run("job", *arguments)).splitlines()]

    assert ids("-q", "q1") == [one]
    assert ids("-q", "q1", "-q", "q2") == [three, two, one]
    assert ids("-S", "failed") == [two]
    assert ids("-S", "failed", "-S", "inactive", "-t", "a") == [three, one]
    assert ids("-t", "b", "-q", "q1") == []
    assert ids("-n", '["x"]') == [one]
    assert ids("-n", '["x", "y"]') == [three, one]
    assert ids("-l", "1") == [three]
    assert ids("-l", "1", "-o", "1") == [two]
    assert ids("-o", "3") == []
    listed = json.loads(_ok(run("job", "--json", "-q", "q2")))
    assert (listed["total"], [job["id"] for job in listed["jobs"]]) == (2, [three, two])


def test_retry_and_remove(run: Run, minion: Minion) -> None:
    parent = minion.enqueue("parent")
    job_id = minion.enqueue("work", lax=True)
    _failed(minion, job_id)

    _ok(run("job", "-R", "-A", "5", "-d", "100", "-E", "300", "-p", "9", "-q", "other",
            "-P", str(parent), str(job_id)))
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert (info["state"], info["retries"], info["attempts"]) == ("inactive", 1, 5)
    assert (info["priority"], info["queue"], info["parents"]) == (9, "other", [parent])
    assert info["delayed"] - info["retried"] == pytest.approx(100, abs=1)  # type: ignore[operator]
    assert info["lax"] is True, "-R leaves lax alone without -x (Perl resets it)"
    _ok(run("job", "-R", "-x", "0", str(job_id)))
    assert minion.job(job_id).info["lax"] is False  # type: ignore[union-attr, index]

    _ok(run("job", "--remove", str(job_id)))
    assert minion.job(job_id) is None
    gone = run("job", "--remove", str(job_id))
    assert gone == (1, "", f"minion-daemon: Job {job_id} does not exist.\n")

    active = minion.enqueue("work")
    worker = minion.backend.register_worker()
    assert minion.backend.dequeue(worker, 0, {"id": active})
    refused = run("job", "--remove", str(active))
    assert refused == (1, "", f"minion-daemon: Job {active} is active.\n")


def test_retry_failed_and_remove_failed(run: Run, minion: Minion) -> None:
    failed = [minion.enqueue("work") for _ in range(3)]
    kept = minion.enqueue("work")
    for job_id in failed:
        _failed(minion, job_id)
    _ok(run("job", "--retry-failed"))
    assert {minion.job(i).info["state"] for i in failed} == {"inactive"}  # type: ignore[union-attr, index]
    for job_id in failed:
        assert minion.backend.dequeue(minion.backend.register_worker(), 0, {"id": job_id})
        assert minion.backend.fail_job(job_id, 1, "again")
    _ok(run("job", "--remove-failed"))
    assert [minion.job(i) for i in failed] == [None, None, None]
    assert minion.job(kept) is not None


def test_broadcast_reaches_the_workers_named(run: Run, minion: Minion) -> None:
    first, second = minion.backend.register_worker(), minion.backend.register_worker()
    assert _ok(run("job", "-b", "jobs", "-a", "[0]", str(first))) == ""
    assert minion.backend.receive(first) == [["jobs", 0]]
    assert minion.backend.receive(second) == []
    _ok(run("job", "-b", "stop", "-a", "[23]"))
    assert minion.backend.receive(first) == minion.backend.receive(second) == [["stop", 23]]


def test_stats_history_workers_and_locks(run: Run, minion: Minion) -> None:
    minion.enqueue("work")
    worker = minion.worker()
    worker.register()
    assert worker.id is not None
    stats = yaml.safe_load(_ok(run("job", "-s")))
    assert (stats["inactive_jobs"], stats["workers"], stats["schedules"]) == (1, 1, 0)
    assert re.fullmatch(r"\d+\.\d{6}", stats["uptime"]), "a numeric string, as Perl shows it"
    assert json.loads(_ok(run("job", "-s", "--json")))["enqueued_jobs"] == 1
    daily = yaml.safe_load(_ok(run("job", "-H")))["daily"]
    assert len(daily) == 24
    assert set(daily[0]) == {"epoch", "failed_jobs", "finished_jobs"}
    assert len(json.loads(_ok(run("job", "-H", "--json")))["daily"]) == 24

    info = minion.backend.list_workers(0, 1)["workers"][0]
    assert _ok(run("job", "-w")) == f"{worker.id}  {info['host']}:{info['pid']}\n"
    shown = yaml.safe_load(_ok(run("job", "-w", str(worker.id))))
    assert list(shown) == ["host", "id", "jobs", "notified", "pid", "started", "status"]
    assert (shown["id"], shown["pid"], shown["status"]) == (worker.id, os.getpid(), info["status"])
    assert json.loads(_ok(run("job", "-w", "--json")))["workers"][0]["id"] == worker.id
    assert json.loads(_ok(run("job", "-w", "--json", str(worker.id))))["jobs"] == []
    assert run("job", "-w", "999") == (1, "", "minion-daemon: Worker 999 does not exist.\n")
    worker.unregister()

    assert minion.lock("alpha", 3600)
    assert minion.lock("beta", 3600, limit=2)
    rows = [line.split() for line in _ok(run("job", "-L")).splitlines()]
    assert [row[1] for row in rows] == ["beta", "alpha"]
    assert all(re.fullmatch(r"\S+T\S+\.\d{6}Z", row[2]) for row in rows)
    assert [line.split()[1] for line in _ok(run("job", "-L", "alpha")).splitlines()] == ["alpha"]
    assert [lock["name"] for lock in json.loads(_ok(run("job", "-L", "--json")))["locks"]] == [
        "beta", "alpha",
    ]
    assert _ok(run("job", "-U", "alpha")) == ""
    assert not minion.is_locked("alpha")
    assert minion.is_locked("beta")


def test_tasks_overview(
    run: Run, task_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(task_path))
    assert _ok(run("job", "-T")) == (
        "add       minion_daemon.job.Job\n"
        "sleep     minion_daemon.job.Job\n"
        "stubborn  minion_daemon.job.Job\n"
    )
    tasks = json.loads(_ok(run("job", "-T", "--json")))["tasks"]
    assert (tasks[0]["name"], tasks[0]["mode"]) == ("add", "fork")
    assert "helpers.worker_tasks:add" in tasks[0]["source"]


def _subprocess(task_path: Path, dsn: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=f"{task_path}:{TESTS}")
    return subprocess.run(
        [sys.executable, "-m", "minion_daemon", "job", "--dsn", dsn, *arguments],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )


def test_foreground_runs_the_job_in_a_real_process(
    task_path: Path, dsn: str, minion: Minion
) -> None:
    enqueued = _subprocess(task_path, dsn, "-e", "add", "-a", "[2, 3]")
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = int(enqueued.stdout)
    performed = _subprocess(task_path, dsn, "-f", str(job_id))
    assert performed.returncode == 0, performed.stderr
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert (info["state"], info["result"], info["queue"]) == (
        "finished", {"added": 5}, "minion_foreground",
    )

    broken = minion.enqueue("add", [1])
    failed = _subprocess(task_path, dsn, "-f", str(broken))
    assert failed.returncode == 1
    message = f"minion-daemon: job {broken} failed: TypeError: add() missing 1 required"
    assert message in failed.stderr
    assert minion.job(broken).info["state"] == "failed"  # type: ignore[union-attr, index]

    waiting = minion.enqueue("add", [1, 1], parents=[minion.enqueue("add", [0, 0])])
    not_ready = _subprocess(task_path, dsn, "-f", str(waiting))
    assert not_ready.returncode == 1
    # Logging is set up as a worker's for -f (a task's own lines show): the last line is ours.
    assert not_ready.stderr.splitlines()[-1] == f"minion-daemon: Job {waiting} is not ready."


def test_a_bad_option_in_a_real_process_is_one_line_and_exit_2(
    task_path: Path, dsn: str
) -> None:
    result = _subprocess(task_path, dsn, "-e", "add", "-a", "not json")
    assert result.returncode == 2
    assert result.stderr.startswith("minion-daemon: -a/--args is not valid JSON: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-A", "x"], "-A/--attempts expects an integer, got 'x'"),
        (["-e", "t", "-a", "[1"], "-a/--args is not valid JSON"),
        (["-e", "t", "-a", '{"a": 1}'], "-a/--args expects a JSON array"),
        (["-e", "t", "-n", "[1]"], "-n/--notes expects a JSON object"),
        (["-n", '{"a": 1}'], "-n/--notes lists jobs by note keys"),
        (["-S", "bogus"], "unknown state 'bogus'"),
        (["-e", "t", "-A", "0"], "option 'attempts' must be between 1 and"),
        (["-e", "t", "-x", "maybe"], "-x/--lax expects 1 or 0"),
        (["1", "2"], "one job id at a time, got 2: 1 2"),
        (["abc"], "job id expects an integer, got 'abc'"),
        (["-l", "-1"], "limit must be between 0 and"),
        (["-w", "1", "2"], "one worker id at a time"),
        (["-b", "jobs", "x"], "worker id expects an integer"),
    ],
)
def test_bad_options_exit_2_with_one_line(run: Run, arguments: list[str], message: str) -> None:
    code, out, err = run("job", *arguments)
    assert (code, out) == (2, "")
    assert err.startswith("minion-daemon: ")
    assert message in err
    assert err.count("\n") == 1


def test_help_and_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("job", "schedule"):
        with pytest.raises(SystemExit) as leaving:
            main([command, "--help"])
        assert leaving.value.code == 0
        assert f"usage: minion-daemon {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as leaving:
        main(["job", "--rem", "1"])  # no abbreviations, as Perl's getopt
    assert leaving.value.code == 2


def test_schedule_command(run: Run, minion: Minion, dsn: str) -> None:
    out = _ok(run(
        "schedule", "-e", "nightly", "-c", "0 4 * * *", "-t", "report", "-a", '["x"]',
        "-A", "3", "-E", "60", "-n", '{"k": 1}', "-p", "5", "-q", "important", "-x", "1",
    ))
    info = minion.list_schedules(names=["nightly"])["schedules"][0]
    assert info["id"] == int(out)
    assert (info["cron"], info["task"], info["args"], info["attempts"]) == (
        "0 4 * * *", "report", ["x"], 3,
    )
    assert (info["expire"], info["notes"], info["priority"], info["queue"], info["lax"]) == (
        60, {"k": 1}, 5, "important", True,
    )
    assert _ok(run("schedule", "-e", "nightly", "-c", "0 5 * * *", "-t", "report")) == out
    shown = yaml.safe_load(_ok(run("schedule", "nightly")))
    assert (shown["cron"], shown["paused"], shown["last_run"]) == ("0 5 * * *", 0, None)
    assert json.loads(_ok(run("schedule", "--json", "nightly")))["name"] == "nightly"

    _ok(run("schedule", "-P", "nightly"))
    next_run = rfc3339(minion.list_schedules(names=["nightly"])["schedules"][0]["next_run"])
    assert _ok(run("schedule")) == f"{out.strip()}  nightly  report  0 5 * * *  {next_run}  1\n"
    _ok(run("schedule", "-r", "nightly"))
    assert json.loads(_ok(run("schedule", "--json")))["schedules"][0]["paused"] is False

    assert _ok(run("schedule", "-d")) == "--- []\n"
    execute(dsn, "UPDATE minion_schedules SET next_run = NOW() - '1 minute'::interval")
    dispatched = yaml.safe_load(_ok(run("schedule", "-d")))
    assert [(entry["name"], entry["id"]) for entry in dispatched] == [("nightly", int(out))]
    assert minion.job(dispatched[0]["job"]) is not None

    _ok(run("schedule", "-R", "nightly"))
    assert run("schedule", "-R", "nightly") == (
        1, "", "minion-daemon: Schedule 'nightly' does not exist.\n",
    )
    assert run("schedule", "nightly")[0] == 1
    assert run("schedule", "-e", "x", "-t", "t")[2] == (
        "minion-daemon: Cron expression is required (-c).\n"
    )
    assert run("schedule", "-e", "x", "-c", "* * * * *")[2] == (
        "minion-daemon: Task is required (-t).\n"
    )
    assert run("schedule", "-e", "x", "-c", "bad", "-t", "t")[0] == 2


# Perl's own `minion job` on the same database (schema 23, which Minion 10.25 knows).

PERL_APP = """
use Mojolicious::Lite;
plugin Minion => {Pg => shift @ARGV};
app->start;
"""
TIME = re.compile(r"^(time|uptime|  epoch|- epoch): .*$", re.MULTILINE)


@pytest.fixture
def perl_and_us(
    make_database: Callable[[int | None], str], pg_server: Server, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[tuple[Minion, Callable[..., tuple[str, str]]]]:
    """A schema-23 database, our Minion on it, and ``both(*args)``: Perl's and our output."""
    dsn = make_database(23)
    url = pg_server.url(str(conninfo_to_dict(dsn)["dbname"]))
    (tmp_path / "app.pl").write_text(PERL_APP, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("postgres:\n  max_schema_version: 23\n", encoding="utf-8")
    minion = Minion(PgBackend(dsn, min_size=0, max_schema_version=23))

    def both(*arguments: str) -> tuple[str, str]:
        perl = subprocess.run(
            ["perl", str(tmp_path / "app.pl"), url, "minion", "job", *arguments],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert perl.returncode == 0, perl.stderr
        capsys.readouterr()
        assert main(["job", "--dsn", dsn, "--config", str(config), *arguments]) == 0
        ours = capsys.readouterr().out
        return TIME.sub(r"\1: X", perl.stdout), TIME.sub(r"\1: X", ours)

    yield minion, both
    minion.close()


@pytest.mark.interop
def test_output_matches_perls_minion_job(
    perl_and_us: tuple[Minion, Callable[..., tuple[str, str]]],
) -> None:
    minion, both = perl_and_us
    parent = minion.enqueue("resize", [640, "x"], notes={"origin": "cli", "yes": "no"})
    child = minion.enqueue("thumbnail", [{"deep": [1, None, True]}], parents=[parent],
                           priority=5, queue="images", lax=True, expire=600, delay=60)
    failed = minion.enqueue("report", ["2024-01-01", "1.5", ""])
    worker = minion.backend.register_worker(None, {"status": {"jobs": 4, "queues": ["a"]}})
    assert minion.backend.dequeue(worker, 0, {"id": failed})
    traceback = "ValueError: boom\n\nTraceback (most recent call last):\n  File \"x.py\"\n"
    assert minion.backend.fail_job(failed, 0, traceback)
    active = minion.enqueue("slow")
    assert minion.backend.dequeue(worker, 0, {"id": active})

    perl, ours = both()
    assert ours == perl
    assert ours.splitlines()[-1] == f"{parent}  inactive  default  resize"
    for job_id in (parent, child, failed, active):
        perl, ours = both(str(job_id))
        assert ours == perl
    for arguments in (["-s"], ["-H"], ["-w"], ["-w", str(worker)], ["-S", "failed"]):
        perl, ours = both(*arguments)
        assert ours == perl, arguments


@pytest.mark.interop
def test_locks_match_perls_with_newer_minions_id_column(
    perl_and_us: tuple[Minion, Callable[..., tuple[str, str]]],
) -> None:
    """Minion 10.25 lists ``name expires``; later versions (and SPEC §5.1) ``id name expires``."""
    minion, both = perl_and_us
    assert minion.lock("one", 600)
    assert minion.lock("two", 600, limit=3)
    perl, ours = both("-L")
    assert [line.split()[1:] for line in ours.splitlines()] == [
        line.split() for line in perl.splitlines()
    ]
