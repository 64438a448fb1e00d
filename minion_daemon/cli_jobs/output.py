"""How the ``job`` and ``schedule`` commands print: Perl's tables and YAML, or JSON.

Tables are ``Mojo::Util::tablify``: every column but the last padded to its widest cell, two
spaces between columns, CR and LF removed from cells. Single items and statistics are YAML as
Perl's ``Minion::_dump`` writes it (YAML::XS): a ``---`` line, sorted keys, ``~`` for null,
timestamps as RFC 3339 UTC with microseconds (``Minion::_datetime``).

The YAML views copy what Perl's values look like, not only the keys: DBD::Pg hands
``bigint[]`` elements and ``numeric`` results over as strings, so Perl quotes the ids in
``parents``, ``children`` and a worker's ``jobs``, ``uptime`` and the history's ``epoch``
(``'2'``, ``'7634.647835'``), and shows booleans as ``1``/``0``; the views do the same. ``--json``
prints the API's data unchanged instead (ids as numbers, times as epoch seconds, booleans).

Strings are quoted by YAML::XS's rules (see :class:`_PerlDumper`). What remains different
is how numbers are written where Perl and Python hold them differently: a float is PyYAML's
``repr`` (``1.0e+20``, ``0.30000000000000004``), where Perl prints 15 significant digits.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import yaml

#: The keys ``Minion::_datetime`` turns into RFC 3339 (plus the schedules' own times).
TIME_KEYS: Final = frozenset((
    *("created", "delayed", "expires", "finished", "notified", "retried", "started", "time"),
    *("last_run", "next_run"),
))
_STRING_ID_LISTS: Final = ("parents", "children", "jobs")
_BOOLEANS: Final = ("lax", "paused")


#: What Perl's ``looks_like_number`` accepts: YAML::XS quotes such strings.
_NUMBER: Final = re.compile(
    r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\s*",
    re.IGNORECASE,
)
_INT: Final = re.compile(r"[+-]?[0-9]+")
_TAG: Final = "tag:yaml.org,2002:"
_LONGEST_QUOTED_TEXT: Final = 30


class _PerlDumper(yaml.SafeDumper):
    """SafeDumper quoting strings as YAML::XS does and writing null as ``~``.

    YAML::XS quotes a string only when it is empty, ``~``, ``true``, ``false``, ``null`` or
    looks like a number (the emitter adds quotes where plain text cannot be read back, such as
    ``a: b``); PyYAML would also quote what YAML 1.1 reads as booleans or timestamps (``yes``,
    ``2024-01-01T00:00:00Z``). The emitter quotes a scalar when ``resolve`` says its plain
    form means another type, so ``resolve`` answers with YAML::XS's rules.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.SequenceNode:
            return f"{_TAG}seq"
        if kind is yaml.MappingNode:
            return f"{_TAG}map"
        return f"{_TAG}{_plain_type(value) if implicit[0] else 'str'}"


def _plain_type(value: str) -> str:
    """What YAML::XS takes a plain scalar for; a string it would misread is quoted."""
    if value in ("", "~", "null"):
        return "null"
    if value in ("true", "false"):
        return "bool"
    if _INT.fullmatch(value):
        return "int"
    return "float" if _NUMBER.fullmatch(value) else "str"


def _null(dumper: yaml.SafeDumper, _: None) -> yaml.ScalarNode:
    return dumper.represent_scalar(f"{_TAG}null", "~")


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # YAML::XS asks for a literal block for text with a line break longer than 30 characters,
    # double quotes for shorter; the emitter falls back to double quotes where a block cannot
    # hold the text (tabs, trailing spaces), PyYAML's exactly as libyaml's.
    style = None
    if "\n" in value:
        style = "|" if len(value) > _LONGEST_QUOTED_TEXT else '"'
    return dumper.represent_scalar(f"{_TAG}str", value, style=style)


_PerlDumper.add_representer(type(None), _null)
_PerlDumper.add_representer(str, _text)


def dump_yaml(data: object) -> str:
    """``Minion::_dump``: the document with a ``---`` line, keys sorted, UTF-8 unescaped."""
    return yaml.dump(
        data,
        Dumper=_PerlDumper,
        explicit_start=True,
        default_flow_style=False,
        sort_keys=True,
        allow_unicode=True,
    )


def dump_json(data: object) -> str:
    """One JSON document on one line, non-ASCII text kept as it is."""
    return json.dumps(data, ensure_ascii=False) + "\n"


def tablify(rows: Iterable[Sequence[object]]) -> str:
    """``Mojo::Util::tablify``; ``None`` cells are empty."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths: list[int] = []
    for row in cells:
        for index, cell in enumerate(row):
            if index == len(widths):
                widths.append(0)
            widths[index] = max(widths[index], len(cell))
    last = len(widths) - 1
    lines = (
        "  ".join(cell if i == last else cell.ljust(widths[i]) for i, cell in enumerate(row))
        for row in cells
    )
    return "".join(f"{line}\n" for line in lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(int(value) if isinstance(value, bool) else value)
    return text.replace("\r", "").replace("\n", "")


def rfc3339(epoch: float) -> str:
    """``Mojo::Date->to_datetime`` of PostgreSQL's epoch: always six fractional digits."""
    whole, fraction = f"{epoch:.6f}".split(".")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(whole))) + f".{fraction}Z"


def perl_view(item: Mapping[str, Any]) -> dict[str, Any]:
    """One job, worker or schedule as Perl's command dumps it (see the module docstring)."""
    view = dict(item)
    for key, value in item.items():
        if key in TIME_KEYS and value:
            view[key] = rfc3339(value)
        elif key in _STRING_ID_LISTS and isinstance(value, list):
            view[key] = [str(member) for member in value]
        elif key in _BOOLEANS:
            view[key] = int(value)
    return view


def numeric(value: float) -> str:
    """A PostgreSQL ``numeric`` epoch or interval as DBD::Pg delivers it to Perl."""
    return f"{value:.6f}"
