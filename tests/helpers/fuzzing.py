"""Hypothesis settings and strategies shared by the fuzz tests (tests/fuzz)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Deterministic (the same examples on every run, so CI cannot flake), no example database on
#: disk, no wall-clock deadline on a loaded machine. Each test draws its cases inside one test
#: function around a database fixture, so the fixture is made once per test, not per example.
FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Text PostgreSQL stores in TEXT and JSONB: anything UTF-8 encodes, except NUL.
storable_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))

#: Integers JSON peers agree on (IEEE doubles are exact up to 2**53).
json_integers = st.integers(-(2**53), 2**53)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    json_integers,
    st.floats(allow_nan=False, allow_infinity=False),
    storable_text,
)

#: Any JSON document the backend accepts.
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(storable_text, inner, max_size=5),
    max_leaves=25,
)

#: Values JSON has no form for, or PostgreSQL cannot store: the backend refuses them.
poison = st.sampled_from(
    [math.nan, math.inf, -math.inf, "a\x00b", "\x00", "\ud800", "x\udfffy", "\udc80\ud800"]
)


def _hide(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``inner`` somewhere in a list or as a value (or key, for text) of a mapping."""
    in_list = st.tuples(st.lists(json_values, max_size=3), inner, st.lists(json_values, max_size=3))
    in_dict = st.tuples(st.dictionaries(storable_text, json_values, max_size=3), inner)
    return st.one_of(
        in_list.map(lambda parts: [*parts[0], parts[1], *parts[2]]),
        in_dict.map(lambda parts: {**parts[0], "poisoned": parts[1]}),
        st.tuples(in_dict, st.sampled_from(["k\x00", "\ud800"])).map(
            lambda parts: {**parts[0][0], parts[1]: parts[0][1]}
        ),
    )


#: A JSON document with at least one poisoned value or key somewhere inside.
poisoned_values = st.recursive(_hide(poison), _hide, max_leaves=3)

#: Anything at all, valid or not, for option values.
junk = st.one_of(
    json_values,
    poison,
    st.integers(),
    st.integers(min_value=2**31 - 3, max_value=2**31 + 3),
    st.integers(min_value=2**63 - 3, max_value=2**63 + 3),
    st.integers(min_value=-(2**63) - 3, max_value=-(2**63) + 3),
    st.floats(),
    st.binary(max_size=8),
    st.tuples(st.integers(), st.integers()),
    st.sets(st.integers(), max_size=3),
    st.lists(st.integers(), max_size=3),
    st.lists(st.one_of(storable_text, st.integers(), st.none()), max_size=3),
    st.builds(object),
)


def same_json(sent: Any, got: Any) -> bool:
    """Whether ``got`` is ``sent`` read back from JSONB.

    Exact, but for the documented exception: JSONB keeps numbers as decimals, so a float that
    ``repr`` writes with an exponent (``1e+16``) comes back as the ``int`` of that decimal,
    which converts back to the same float.
    """
    if isinstance(sent, float):
        return isinstance(got, int | float) and not isinstance(got, bool) and float(got) == sent
    if isinstance(sent, bool) or sent is None or isinstance(sent, int | str):
        return type(got) is type(sent) and got == sent
    if isinstance(sent, list):
        return (
            isinstance(got, list)
            and len(got) == len(sent)
            and all(same_json(a, b) for a, b in zip(sent, got, strict=True))
        )
    if isinstance(sent, dict):
        return (
            isinstance(got, dict)
            and got.keys() == sent.keys()
            and all(same_json(sent[key], got[key]) for key in sent)
        )
    raise TypeError(f"not a JSON value: {sent!r}")
