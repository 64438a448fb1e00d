"""What a job's outcome must be to be stored, checked without a database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers.worker_tasks import UNSTORABLE

from minion_daemon.options import json_problem, storable_text


@pytest.mark.parametrize("kind", UNSTORABLE)
def test_each_unstorable_value_is_named_with_its_place(kind: str) -> None:
    build, named = UNSTORABLE[kind]
    problem = json_problem("result", build())
    assert problem is not None
    for part in named:
        assert part in problem, problem


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**63), 10**4000, 1.5, 1e300, "", "é✓", [1, [2, {"a": None}]], {"a": {}}],
)
def test_a_storable_value_has_no_problem_and_encodes(value: Any) -> None:
    assert json_problem("result", value) is None
    json.dumps(value, allow_nan=False)


def test_a_value_shared_by_two_members_is_no_cycle() -> None:
    shared = {"a": 1}
    assert json_problem("result", [shared, shared, {"again": shared}]) is None


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "plain"),
        ("a\x00b", "a\\x00b"),
        ("lone \udc80 surrogate", "lone \\udc80 surrogate"),
        ("both \x00\ud800", "both \\x00\\ud800"),
    ],
)
def test_an_error_text_is_made_storable_and_keeps_what_it_said(text: str, stored: str) -> None:
    assert storable_text(text) == stored
    assert json_problem("error", storable_text(text)) is None
