"""Testing tasks without a daemon (docs/testing.md): ``Minion.perform_jobs`` runs each job in
its task's mode and under its timeout, ``Minion.enqueued`` lists what was enqueued, and the
pytest plugin ``minion_daemon.testing`` gives throwaway test files a ``minion`` on a database
of their own and a database-free ``minion_eager``. The test files run in a pytest subprocess
(pytester) on the local PostgreSQL server, through ``$MINION_DAEMON_TEST_DSN``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from helpers.daemon import add_distribution
from helpers.postgres import Server
from psycopg import conninfo as libpq

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.job import Job

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "tasks"
DOCS = ROOT / "docs"


def _pid(job: Job) -> int:
    return os.getpid()


def _nap(job: Job, seconds: float) -> None:
    time.sleep(seconds)


def _state(minion: Minion, job_id: int) -> tuple[str, object]:
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    return info["state"], info["result"]


def test_perform_jobs_runs_each_task_in_its_mode(minion: Minion) -> None:
    minion.add_task("forked", _pid).add_task("inline", _pid, mode="inline")
    forked, inline = minion.enqueue("forked"), minion.enqueue("inline")
    minion.perform_jobs()
    assert _state(minion, inline) == ("finished", os.getpid())
    state, pid = _state(minion, forked)
    assert state == "finished"
    assert pid != os.getpid()


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_perform_jobs_fails_a_job_past_its_timeout(minion: Minion, mode: str) -> None:
    minion.add_task("nap", _nap)
    minion.tasks.configure("nap", mode=mode, timeout=0.5)
    job_id = minion.enqueue("nap", [30])
    began = time.monotonic()
    minion.perform_jobs()
    assert _state(minion, job_id) == ("failed", "Job timed out after 0.5 seconds")
    assert time.monotonic() - began < 10


def test_enqueued_lists_the_matching_jobs_oldest_first(minion: Minion) -> None:
    first = minion.enqueue("mail", ["a@example.org"], queue="mails")
    second = minion.enqueue("mail", ["b@example.org"])
    minion.enqueue("other", ["a@example.org"])
    assert [job["id"] for job in minion.enqueued(task="mail")] == [first, second]
    assert [job["id"] for job in minion.enqueued(queue="mails")] == [first]
    assert [job["id"] for job in minion.enqueued(args=["b@example.org"])] == [second]
    assert minion.enqueued(task="mail", queue="nowhere") == []
    with pytest.raises(ValueError, match="more than 1 job"):
        minion.enqueued(task="mail", limit=1)


def test_the_suites_own_minion_fixture_wins_over_the_plugins(minion: Minion, dsn: str) -> None:
    job_id = minion.enqueue("anything")
    backend = PgBackend(dsn, pooled=False)
    try:
        assert backend.list_jobs(0, 1, {"ids": [job_id]})["total"] == 1
    finally:
        backend.close()


def test_the_plugin_is_registered_and_imports_nothing_heavy() -> None:
    code = (
        "import importlib.metadata, sys, minion_daemon.testing;"
        "points = importlib.metadata.entry_points(group='pytest11');"
        "print([p.value for p in points if p.value.startswith('minion_daemon')]);"
        "heavy = ('psycopg', 'structlog', 'minion_daemon.minion');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.splitlines() == ["['minion_daemon.testing']", "[]"]


@pytest.fixture
def example_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example task package as if installed: on PYTHONPATH, with its entry points."""
    project = tomllib.loads((EXAMPLES / "pyproject.toml").read_text(encoding="utf-8"))
    points = project["project"]["entry-points"]["minion_daemon.tasks"]
    (tmp_path / "site").mkdir()
    installed = add_distribution(tmp_path / "site", "minion-daemon-example-tasks", points)
    monkeypatch.setenv("PYTHONPATH", f"{installed}{os.pathsep}{EXAMPLES}")
    return installed


@pytest.fixture
def test_server(pg_server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("MINION_DAEMON_TEST_DSN", pg_server.admin_dsn)
    return pg_server


PLUGIN_TESTS = """
import os
import time
from pathlib import Path

from minion_daemon import Minion


def pid(job):
    return os.getpid()


def nap(job, seconds):
    time.sleep(seconds)


def test_a_minion_with_the_installed_tasks(minion, minion_dsn):
    Path("dsn.txt").write_text(minion_dsn)
    assert isinstance(minion, Minion)
    assert {"noop", "sleep", "echo", "fail"} <= set(minion.tasks)
    job_id = minion.enqueue("echo", [1, "two"])
    minion.perform_jobs()
    assert minion.job(job_id).info["result"] == [1, "two"]


def test_each_test_starts_empty(minion):
    assert minion.stats()["inactive_jobs"] == 0
    assert minion.enqueue("noop") == 1


def test_modes(minion):
    minion.add_task("forked", pid).add_task("inline", pid, mode="inline")
    forked, inline = minion.enqueue("forked"), minion.enqueue("inline")
    minion.perform_jobs()
    assert minion.job(inline).info["result"] == os.getpid() != minion.job(forked).info["result"]


def test_timeout(minion):
    minion.add_task("nap", nap, timeout=0.5)
    job_id = minion.enqueue("nap", [30])
    minion.perform_jobs()
    info = minion.job(job_id).info
    assert (info["state"], info["result"]) == ("failed", "Job timed out after 0.5 seconds")


def test_enqueued(minion):
    minion.enqueue("echo", ["hello"], queue="greetings")
    [job] = minion.enqueued(task="echo", queue="greetings", args=["hello"])
    assert job["state"] == "inactive"
"""


def test_the_plugin_gives_a_minion_on_a_database_of_its_own(
    pytester: pytest.Pytester, test_server: Server, example_tasks: Path
) -> None:
    pytester.makepyfile(test_plugin=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-p", "minion_daemon.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    name = libpq.conninfo_to_dict((pytester.path / "dsn.txt").read_text(encoding="utf-8"))["dbname"]
    assert str(name).startswith("minion_test_")
    with test_server.admin() as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchall()
    assert left == [], "the session's database was dropped"


EAGER_TESTS = """
import sys

import pytest


def add(job, first, second):
    return first + second


def test_runs_the_task_at_enqueue(minion_eager):
    minion_eager.add_task("add", add)
    job_id = minion_eager.enqueue("add", [1, 2], queue="sums")
    info = minion_eager.info(job_id)
    assert (info["state"], info["result"], info["queue"]) == ("finished", 3, "sums")
    assert minion_eager.enqueued(task="add", args=[1, 2]) == [info]
    assert "psycopg" not in sys.modules


def test_a_result_that_is_not_json_fails_the_job(minion_eager):
    minion_eager.add_task("a_set", lambda job: {1, 2})
    info = minion_eager.info(minion_eager.enqueue("a_set"))
    assert info["state"] == "failed"
    assert info["result"].startswith("Result cannot be stored as JSON")


def test_an_error_fails_the_job(minion_eager):
    minion_eager.add_task("add", add)
    info = minion_eager.info(minion_eager.enqueue("add", [1, "two"]))
    assert info["state"] == "failed"
    assert info["result"].startswith("TypeError: unsupported operand")


def test_arguments_go_through_json(minion_eager):
    minion_eager.add_task("add", add)
    with pytest.raises(TypeError):
        minion_eager.enqueue("add", [1, object()])
"""


def test_eager_mode_runs_tasks_at_enqueue_without_a_database(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_eager=EAGER_TESTS)
    result = pytester.runpytest_subprocess("-p", "minion_daemon.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_the_example_tasks_pass_their_own_tests_and_the_docs_examples(
    pytester: pytest.Pytester, test_server: Server, example_tasks: Path
) -> None:
    tests = EXAMPLES / "tests" / "test_example_tasks.py"
    docs = (DOCS / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", docs, re.MULTILINE | re.DOTALL)
    pytester.makepyfile(
        test_example_tasks=tests.read_text(encoding="utf-8"),
        test_docs="\n\n".join(blocks),
    )
    result = pytester.runpytest_subprocess("-p", "minion_daemon.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9)


EMBEDDED_TESTS = """
from pathlib import Path


def test_a_minion_on_a_private_cluster(minion, minion_dsn):
    Path("dsn.txt").write_text(minion_dsn)
    minion.add_task("add", lambda job, first, second: first + second, mode="inline")
    job_id = minion.enqueue("add", [1, 2])
    minion.perform_jobs()
    assert minion.job(job_id).info["result"] == 3
"""


@pytest.mark.slow(seconds=8)
def test_without_a_server_the_plugin_makes_a_private_cluster(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINION_DAEMON_TEST_DSN", raising=False)
    pytester.makepyfile(test_embedded=EMBEDDED_TESTS)
    result = pytester.runpytest_subprocess("-p", "minion_daemon.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    dsn = (pytester.path / "dsn.txt").read_text(encoding="utf-8")
    state_dir = Path(libpq.conninfo_to_dict(dsn)["host"]).parents[1]
    assert state_dir.name.startswith("minion-test-")
    assert not state_dir.exists(), "the cluster and its directory are gone"


def test_a_server_out_of_reach_is_one_line_naming_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINION_DAEMON_TEST_DSN", "host=127.0.0.1 port=1 user=postgres")
    pytester.makepyfile(test_unreachable="def test_it(minion):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "minion_daemon.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.re_match_lines([r"E? *MINION_DAEMON_TEST_DSN: cannot create database .*port 1"])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*databases.py*")
