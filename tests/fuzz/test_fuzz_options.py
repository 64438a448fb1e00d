"""Fuzzing the options of ``enqueue``, ``retry_job`` and ``list_jobs`` against PostgreSQL.

Keys are the real option names mixed with junk; values are right, wrong-typed, out of range,
poisoned (NUL, lone surrogates, NaN) or of types JSON has no form for. Every call either
succeeds, and then did what its options say, or raises ``ValueError``/``TypeError`` naming the
operation: never a database error (``psycopg.Error``, ``BackendError``), which would mean a bad
value reached PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from helpers.fuzzing import FUZZ, json_values, junk, poison, same_json, storable_text
from hypothesis import event, example, given
from hypothesis import strategies as st

from minion_daemon.backend import PgBackend
from minion_daemon.model import JOB_STATES, JobInfo

#: In one test process, on the module's one database: its last test checks the tables the
#: fuzzing left behind.
pytestmark = pytest.mark.xdist_group("fuzz_options")

INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

T = TypeVar("T")

TASKS = ["fuzz", "other", "'; DROP TABLE minion_jobs; --"]
QUEUES = ["default", "fuzz", "$(rm -rf /)"]


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, now and then junk, so that many calls pass the checks and reach
    PostgreSQL. (``one_of`` would not do: it draws its branches evenly, repeated or not.)"""
    return st.integers(0, 5).flatmap(lambda n: junk if n == 0 else valid)


ids = st.one_of(
    st.integers(1, 50),
    st.integers(-BIGINT_MAX - 1, BIGINT_MAX),
    st.integers(1, 50).map(str),
    st.sampled_from(["", "-1", "01", "1.0", " 1", "9" * 19, "9" * 20, "\u0663"]),
)
#: Ids no job of these tests has: a retry of one of them must change nothing.
foreign_ids = st.one_of(
    st.integers(10**12, BIGINT_MAX),
    st.integers(-BIGINT_MAX - 1, 0),
    st.sampled_from(["", "-1", "1.0", " 1", "9" * 19, "9" * 20, "\u0663"]),
)
id_lists = st.lists(ids, max_size=4) | st.tuples(ids) | st.builds(range, st.integers(0, 3))

seconds = st.one_of(
    st.floats(0, 1e6),
    st.integers(0, 10**6),
    st.sampled_from([0, 0.0, 5e-324, 2**31 - 1, 2**31, -0.0, -1, 1e308, float("nan")]),
)
counts = st.one_of(
    st.integers(1, 10),
    st.integers(-3, 10),
    st.sampled_from([INT_MAX, INT_MAX + 1, -INT_MAX - 1, -INT_MAX - 2]),
)

JOB_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "attempts": mostly(counts),
    "delay": mostly(seconds),
    "expire": mostly(counts.map(lambda n: n * 60)),
    "lax": mostly(st.sampled_from([True, False, 0, 1, 2, -1, "true", None])),
    "notes": mostly(st.dictionaries(storable_text, json_values, max_size=3)),
    "parents": mostly(id_lists),
    "priority": mostly(counts | st.integers(-INT_MAX - 2, INT_MAX + 1)),
    "queue": mostly(st.sampled_from(QUEUES) | storable_text | poison),
}

FILTERS: dict[str, st.SearchStrategy[Any]] = {
    "before": mostly(ids),
    "ids": mostly(id_lists),
    "notes": mostly(st.lists(storable_text | st.sampled_from(["a", "k"]), max_size=3)),
    "queues": mostly(st.lists(st.sampled_from(QUEUES) | storable_text | poison, max_size=3)),
    "states": mostly(st.lists(st.sampled_from([*JOB_STATES, "running", ""]), max_size=3)),
    "tasks": mostly(st.lists(st.sampled_from(TASKS) | storable_text, max_size=3)),
}


def options(real: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Option mappings: some of the real keys with values of every kind; now and then a junk
    key (or one another operation takes), no mapping at all, or something else entirely."""
    known = st.fixed_dictionaries({}, optional=real)
    keys = storable_text | st.integers() | st.sampled_from(["notes", "state", "retries", "id"])
    extra = st.dictionaries(keys, junk, min_size=1, max_size=2)
    odd = st.tuples(known, extra).map(lambda parts: {**parts[0], **parts[1]}) | st.none() | junk
    return st.integers(0, 5).flatmap(lambda n: odd if n == 0 else known)


def _outcome(operation: str, call: Callable[[], T]) -> T | None:
    """The call's result, or ``None`` when it refused its arguments as it should."""
    try:
        result = call()
    except (ValueError, TypeError) as error:
        refusal: ValueError | TypeError = error
    else:
        event("accepted")
        return result
    assert str(refusal).startswith(f"{operation}: "), repr(refusal)
    event(f"refused: {type(refusal).__name__}")
    return None


def _info(backend: PgBackend, job_id: int) -> JobInfo | None:
    jobs = backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    return jobs[0] if jobs else None


def _as_ids(values: Any) -> list[int]:
    return [int(value) for value in values]


@pytest.fixture(scope="module")
def job_count(module_backend: PgBackend) -> Callable[[], int]:
    return lambda: int(module_backend.stats()["inactive_jobs"])


@FUZZ
@given(
    task=mostly(st.sampled_from(TASKS) | storable_text),
    args=mostly(st.lists(json_values, max_size=3)),
    opts=options(JOB_OPTIONS),
)
@example(task="fuzz", args=[], opts={"attempts": 0, "priority": 2**31, "delay": float("nan")})
@example(task="fuzz", args=[10**5000], opts=None)
@example(task="fuzz", args=[], opts={"parents": ["9" * 20]})
@example(task="fuzz", args=[], opts={"notes": {"k": 10**5000}})
@example(task=TASKS[2], args=["$(rm -rf /)"], opts={"queue": QUEUES[2], "notes": {"`id`": 1}})
def test_enqueue_accepts_or_refuses_before_the_database(
    module_backend: PgBackend, job_count: Callable[[], int], task: Any, args: Any, opts: Any
) -> None:
    before = job_count()
    job_id = _outcome("enqueue", lambda: module_backend.enqueue(task, args, opts))
    if job_id is None:
        assert job_count() == before
        return
    info = _info(module_backend, job_id)
    given_options = {key: value for key, value in (opts or {}).items() if value is not None}
    if info is None:
        assert "expire" in given_options  # expired already: never listed
        return
    assert info["task"] == task
    assert same_json(list(args or []), info["args"])
    assert info["state"] == "inactive"
    assert info["attempts"] == given_options.get("attempts", 1)
    assert info["priority"] == given_options.get("priority", 0)
    assert info["queue"] == given_options.get("queue", "default")
    assert info["lax"] is bool(given_options.get("lax", False))
    assert info["parents"] == _as_ids(given_options.get("parents", []))
    assert same_json(dict(given_options.get("notes", {})), info["notes"])
    assert info["delayed"] >= info["created"]


@FUZZ
@given(
    target=mostly(st.sampled_from(["job", "job", "job as text"]) | foreign_ids),
    retries=mostly(st.sampled_from(["current", "current", "stale"]) | counts),
    opts=options({key: value for key, value in JOB_OPTIONS.items() if key != "notes"}),
)
@example(target="job", retries="current", opts={"notes": {}})
@example(target="job", retries="current", opts={"delay": 2**31, "queue": "a\x00"})
@example(target="job", retries=-1, opts=None)
def test_retry_job_accepts_or_refuses_before_the_database(
    module_backend: PgBackend, target: Any, retries: Any, opts: Any
) -> None:
    job_id = module_backend.enqueue("fuzz", [], {"queue": "retry"})
    before = _info(module_backend, job_id)
    assert before is not None
    named = {"job": job_id, "job as text": str(job_id)}
    target = named.get(target, target) if isinstance(target, str) else target
    fence = {"current": before["retries"], "stale": before["retries"] + 1}
    retries = fence.get(retries, retries) if isinstance(retries, str) else retries
    retried = _outcome("retry_job", lambda: module_backend.retry_job(target, retries, opts))
    after = _info(module_backend, job_id)
    assert after is not None
    if not retried:
        assert {**after, "time": 0} == {**before, "time": 0}
        return
    given_options = {key: value for key, value in (opts or {}).items() if value is not None}
    assert after["retries"] == before["retries"] + 1
    assert after["state"] == "inactive"
    for key in ("attempts", "priority", "queue"):
        assert after[key] == given_options.get(key, before[key])  # type: ignore[literal-required]
    assert after["lax"] is bool(given_options.get("lax", before["lax"]))
    assert after["parents"] == _as_ids(given_options.get("parents", before["parents"]))


@FUZZ
@given(
    offset=mostly(st.integers(0, 5) | st.sampled_from([-1, BIGINT_MAX, BIGINT_MAX + 1])),
    limit=mostly(st.integers(0, 20) | st.sampled_from([-1, BIGINT_MAX, BIGINT_MAX + 1])),
    filters=options(FILTERS),
)
@example(offset=0, limit=10, filters={"states": ["running"]})
@example(offset=0, limit=10, filters={"ids": ["9" * 20], "before": "01"})
@example(offset=BIGINT_MAX, limit=BIGINT_MAX, filters={"queues": ["a\x00"], "notes": []})
def test_list_jobs_accepts_or_refuses_before_the_database(
    module_backend: PgBackend, offset: Any, limit: Any, filters: Any
) -> None:
    listed = _outcome("list_jobs", lambda: module_backend.list_jobs(offset, limit, filters))
    if listed is None:
        return
    jobs, given_filters = listed["jobs"], {
        key: value for key, value in (filters or {}).items() if value is not None
    }
    assert len(jobs) <= limit
    assert listed["total"] >= len(jobs)
    assert [job["id"] for job in jobs] == sorted((job["id"] for job in jobs), reverse=True)
    for job in jobs:
        if "before" in given_filters:
            assert job["id"] < int(given_filters["before"])
        if "ids" in given_filters:
            assert job["id"] in _as_ids(given_filters["ids"])
        for key, field in (("queues", "queue"), ("states", "state"), ("tasks", "task")):
            if key in given_filters:
                assert job[field] in given_filters[key]  # type: ignore[literal-required]
        if "notes" in given_filters:
            assert set(job["notes"]) & set(given_filters["notes"])


def test_the_tables_survived_the_fuzzing(module_backend: PgBackend) -> None:
    """Task and queue names above included SQL; the statements only ever bound them."""
    stats = module_backend.stats()
    assert stats["inactive_jobs"] > 0
    assert module_backend.list_jobs(0, 1, {"tasks": [TASKS[2]]})["jobs"]
