"""Fuzzing JSON through PostgreSQL: args, notes and results round-trip; the unstorable is refused.

Hypothesis builds JSON documents (null, booleans, integers within +-2**53, finite floats, text
without NUL or lone surrogates, nested lists and objects). Each is enqueued as args and notes,
read back by ``list_jobs`` and by the dequeue, merged again with ``note`` and recorded as a
result: every read gives the document back (see ``same_json`` for JSONB's one liberty with
floats). Documents hiding NaN, an infinity, a NUL or a lone surrogate anywhere, in a value or a
key, are refused with a ``ValueError`` before the database, and no job appears.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from helpers.fuzzing import FUZZ, json_values, poisoned_values, same_json, storable_text
from hypothesis import example, given
from hypothesis import strategies as st

from minion_daemon.backend import PgBackend

args_lists = st.lists(json_values, max_size=5)
notes_maps = st.dictionaries(storable_text, json_values, max_size=5)


@pytest.fixture(scope="module")
def worker_id(module_backend: PgBackend) -> int:
    return module_backend.register_worker()


@FUZZ
@given(args=args_lists, notes=notes_maps, result=json_values)
@example(args=[1e16, 1e23, 5e-324, -0.0, 1.7976931348623157e308], notes={}, result=0.1)
@example(args=[2**53, -(2**53), "\u2028\ufeff\U0001f600"], notes={"": None}, result=[])
@example(args=["\x01\x1f\x7f", "\\u0000", "'; --", "%s%(x)s$1"], notes={"a\tb": {}}, result="")
def test_args_notes_and_results_round_trip(
    module_backend: PgBackend, worker_id: int, args: list[Any], notes: dict[str, Any], result: Any
) -> None:
    job_id = module_backend.enqueue("json", args, {"notes": notes, "queue": "json"})
    [listed] = module_backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert same_json(args, listed["args"])
    assert same_json(notes, listed["notes"])

    claimed = module_backend.dequeue(worker_id, 0, {"id": job_id, "queues": ["json"]})
    assert claimed is not None
    assert claimed["id"] == job_id
    assert same_json(args, claimed["args"])

    # Merging the notes again changes only their nulls: Minion's note() strips them.
    assert module_backend.note(job_id, notes)
    assert module_backend.finish_job(job_id, claimed["retries"], result)
    [finished] = module_backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert same_json(_strip_nulls(notes), finished["notes"])
    assert same_json(result, finished["result"])
    assert finished["state"] == "finished"


@FUZZ
@given(where=st.sampled_from(["args", "notes", "note", "result"]), value=poisoned_values)
@example(where="args", value=[math.nan])
@example(where="notes", value={"a\x00": 1})
@example(where="note", value={"k": ["\ud800"]})
@example(where="result", value={"k": [math.inf]})
def test_unstorable_json_is_refused_before_the_database(
    module_backend: PgBackend, worker_id: int, where: str, value: Any
) -> None:
    before = module_backend.stats()
    job_id = module_backend.enqueue("json", [], {"queue": "refused"}) if where != "args" else None
    calls = {
        "args": lambda: module_backend.enqueue("json", _as_args(value)),
        "notes": lambda: module_backend.enqueue("json", [], {"notes": _as_notes(value)}),
        "note": lambda: module_backend.note(job_id, _as_notes(value)),  # type: ignore[arg-type]
        "result": lambda: module_backend.finish_job(job_id, 0, value),  # type: ignore[arg-type]
    }
    with pytest.raises(ValueError, match=r"NUL|surrogate|JSON cannot represent") as raised:
        calls[where]()
    assert not isinstance(raised.value, TypeError)
    after = module_backend.stats()
    assert after["inactive_jobs"] == before["inactive_jobs"] + (job_id is not None)
    if job_id is not None:
        [job] = module_backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
        assert (job["notes"], job["result"], job["state"]) == ({}, None, "inactive")
        assert module_backend.remove_job(job_id)


def _strip_nulls(value: Any) -> Any:
    """PostgreSQL's ``jsonb_strip_nulls``: object fields holding null go, at every depth."""
    if isinstance(value, dict):
        return {key: _strip_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_strip_nulls(item) for item in value]
    return value


def _as_args(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _as_notes(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"poisoned": value}
