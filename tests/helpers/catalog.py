"""Describe a database's Minion schema from PostgreSQL's catalog, for comparisons."""

from __future__ import annotations

from typing import Any

import psycopg

_TABLES = """
SELECT c.relname, c.relpersistence
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY c.relname
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
  pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute AS a
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype != 't'
ORDER BY 1, 2
"""

_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"

_SEQUENCES = """
SELECT c.relname, pg_get_serial_sequence(d.refobjid::regclass::text, a.attname) IS NOT NULL
FROM pg_class AS c
JOIN pg_depend AS d ON d.objid = c.oid AND d.deptype = 'a'
JOIN pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace
ORDER BY 1
"""

_FUNCTIONS = """
SELECT p.oid::regprocedure::text, format_type(p.prorettype, NULL), l.lanname, p.provolatile
FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
WHERE p.pronamespace = 'public'::regnamespace
ORDER BY 1
"""

_TRIGGERS = """
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1
"""

_ENUMS = """
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type AS t JOIN pg_enum AS e ON e.enumtypid = t.oid
WHERE t.typnamespace = 'public'::regnamespace
GROUP BY t.typname
"""


#: minion-daemon's own tables (``migrations/minion_daemon.sql``) are named with this prefix;
#: no object of Minion's is.
OWN_PREFIX = "minion_daemon_"


def describe(dsn: str) -> dict[str, Any]:
    """Everything about Minion's schema that another Minion could observe, bodies excepted;
    minion-daemon's own objects are left out (see :func:`describe_own`)."""
    return _split(_describe(dsn), own=False)


def describe_own(dsn: str) -> dict[str, Any]:
    """:func:`describe` for minion-daemon's own objects only."""
    return _split(_describe(dsn), own=True)


def _split(catalog: dict[str, Any], *, own: bool) -> dict[str, Any]:
    def keep(name: str) -> bool:
        return name.startswith(OWN_PREFIX) == own

    split: dict[str, Any] = {}
    for part, found in catalog.items():
        if isinstance(found, dict):
            split[part] = {name: value for name, value in found.items() if keep(name)}
        else:
            split[part] = [row for row in found if keep(row[0])]
    return split


def _describe(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = {}
        for name, persistence in conn.execute(_TABLES).fetchall():
            columns = conn.execute(_COLUMNS, (name,)).fetchall()
            tables[name] = {"persistence": persistence, "columns": columns}
        return {
            "tables": tables,
            "constraints": conn.execute(_CONSTRAINTS).fetchall(),
            "indexes": dict(conn.execute(_INDEXES).fetchall()),
            "sequences": conn.execute(_SEQUENCES).fetchall(),
            "functions": conn.execute(_FUNCTIONS).fetchall(),
            "triggers": dict(conn.execute(_TRIGGERS).fetchall()),
            "enums": dict(conn.execute(_ENUMS).fetchall()),
        }
