"""The migrated schema, read back from PostgreSQL's catalog, against SPEC §1 (versions 23-25).

The expectations are written out from the SPEC's tables, not from our migration file, so a
change to the SQL that drifts from Perl Minion's schema fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers.catalog import describe, describe_own

from minion_daemon.backend import PgBackend

TS = "timestamp with time zone"

JOBS_COLUMNS = [
    ("id", "bigint", True, "nextval('minion_jobs_id_seq'::regclass)"),
    ("args", "jsonb", True, None),
    ("attempts", "integer", True, "1"),
    ("created", TS, True, "now()"),
    ("delayed", TS, True, None),
    ("finished", TS, False, None),
    ("notes", "jsonb", True, "'{}'::jsonb"),
    ("parents", "bigint[]", True, "'{}'::bigint[]"),
    ("priority", "integer", True, None),
    ("queue", "text", True, "'default'::text"),
    ("result", "jsonb", False, None),
    ("retried", TS, False, None),
    ("retries", "integer", True, "0"),
    ("started", TS, False, None),
    ("state", "minion_state", True, "'inactive'::minion_state"),
    ("task", "text", True, None),
    ("worker", "bigint", False, None),
    ("expires", TS, False, None),
    ("lax", "boolean", True, "false"),
]

WORKERS_COLUMNS = [
    ("id", "bigint", True, "nextval('minion_workers_id_seq'::regclass)"),
    ("host", "text", True, None),
    ("inbox", "jsonb", True, "'[]'::jsonb"),
    ("notified", TS, True, "now()"),
    ("pid", "integer", True, None),
    ("started", TS, True, "now()"),
    ("status", "jsonb", True, "'{}'::jsonb"),
]

LOCKS_COLUMNS = [
    ("id", "bigint", True, "nextval('minion_locks_id_seq'::regclass)"),
    ("name", "text", True, None),
    ("expires", TS, True, None),
]

SCHEDULES_COLUMNS = [
    ("id", "bigint", True, "nextval('minion_schedules_id_seq'::regclass)"),
    ("args", "jsonb", True, "'[]'::jsonb"),
    ("attempts", "integer", True, "1"),
    ("created", TS, True, "now()"),
    ("cron", "text", True, None),
    ("expire", "integer", False, None),
    ("last_job", "bigint", False, None),
    ("last_run", TS, False, None),
    ("lax", "boolean", True, "false"),
    ("name", "text", True, None),
    ("next_run", TS, True, None),
    ("notes", "jsonb", True, "'{}'::jsonb"),
    ("paused", "boolean", True, "false"),
    ("priority", "integer", True, "0"),
    ("queue", "text", True, "'default'::text"),
    ("task", "text", True, None),
]

MIGRATIONS_COLUMNS = [("name", "text", True, None), ("version", "bigint", True, None)]


def _check(table: str, name: str, kind: str) -> tuple[str, str, str]:
    return (table, name, f"CHECK ((jsonb_typeof({name.split('_')[2]}) = '{kind}'::text))")


CONSTRAINTS_23 = [
    _check("minion_jobs", "minion_jobs_args_check", "array"),
    _check("minion_jobs", "minion_jobs_notes_check", "object"),
    ("minion_jobs", "minion_jobs_pkey", "PRIMARY KEY (id)"),
    ("minion_locks", "minion_locks_pkey", "PRIMARY KEY (id)"),
    _check("minion_workers", "minion_workers_inbox_check", "array"),
    ("minion_workers", "minion_workers_pkey", "PRIMARY KEY (id)"),
    _check("minion_workers", "minion_workers_status_check", "object"),
    ("mojo_migrations", "mojo_migrations_pkey", "PRIMARY KEY (name)"),
    ("mojo_migrations", "mojo_migrations_version_check", "CHECK ((version >= 0))"),
]

CONSTRAINTS_25 = sorted(
    [
        *CONSTRAINTS_23,
        _check("minion_schedules", "minion_schedules_args_check", "array"),
        ("minion_schedules", "minion_schedules_name_key", "UNIQUE (name)"),
        _check("minion_schedules", "minion_schedules_notes_check", "object"),
        ("minion_schedules", "minion_schedules_pkey", "PRIMARY KEY (id)"),
    ]
)


def _index(name: str, table: str, definition: str, *, unique: bool = False) -> tuple[str, str]:
    kind = "UNIQUE INDEX" if unique else "INDEX"
    return name, f"CREATE {kind} {name} ON public.{table} USING {definition}"


INDEXES_23 = dict(
    [
        _index("minion_jobs_expires_idx", "minion_jobs", "btree (expires)"),
        _index("minion_jobs_notes_idx", "minion_jobs", "gin (notes)"),
        _index("minion_jobs_parents_idx", "minion_jobs", "gin (parents)"),
        _index("minion_jobs_pkey", "minion_jobs", "btree (id)", unique=True),
        _index(
            "minion_jobs_state_priority_id_idx", "minion_jobs", "btree (state, priority DESC, id)"
        ),
        _index("minion_locks_name_expires_idx", "minion_locks", "btree (name, expires)"),
        _index("minion_locks_pkey", "minion_locks", "btree (id)", unique=True),
        _index("minion_workers_pkey", "minion_workers", "btree (id)", unique=True),
        _index("mojo_migrations_pkey", "mojo_migrations", "btree (name)", unique=True),
    ]
)

INDEXES_24 = INDEXES_23 | dict(
    [_index("minion_jobs_finished_state_idx", "minion_jobs", "btree (finished, state)")]
)

INDEXES_25 = INDEXES_24 | dict(
    [
        _index("minion_schedules_name_key", "minion_schedules", "btree (name)", unique=True),
        _index(
            "minion_schedules_next_run_idx",
            "minion_schedules",
            "btree (next_run) WHERE (NOT paused)",
        ),
        _index("minion_schedules_pkey", "minion_schedules", "btree (id)", unique=True),
    ]
)

TRIGGER = (
    "CREATE TRIGGER minion_jobs_notify_workers_trigger AFTER INSERT OR UPDATE OF retries"
    " ON public.minion_jobs FOR EACH ROW EXECUTE FUNCTION minion_jobs_notify_workers()"
)


def expected_catalog(version: int) -> dict[str, Any]:
    tables: dict[str, Any] = {
        "minion_jobs": {"persistence": "p", "columns": JOBS_COLUMNS},
        "minion_locks": {"persistence": "u", "columns": LOCKS_COLUMNS},
        "minion_workers": {"persistence": "u", "columns": WORKERS_COLUMNS},
        "mojo_migrations": {"persistence": "p", "columns": MIGRATIONS_COLUMNS},
    }
    sequences = ["minion_jobs_id_seq", "minion_locks_id_seq", "minion_workers_id_seq"]
    if version >= 25:
        tables["minion_schedules"] = {"persistence": "p", "columns": SCHEDULES_COLUMNS}
        sequences.insert(2, "minion_schedules_id_seq")
    return {
        "tables": dict(sorted(tables.items())),
        "constraints": CONSTRAINTS_25 if version >= 25 else CONSTRAINTS_23,
        "indexes": {23: INDEXES_23, 24: INDEXES_24, 25: INDEXES_25}[version],
        "sequences": [(name, True) for name in sequences],
        "functions": [
            ("minion_jobs_notify_workers()", "trigger", "plpgsql", "v"),
            ("minion_lock(text,integer,integer)", "boolean", "plpgsql", "v"),
        ],
        "triggers": {"minion_jobs_notify_workers_trigger": TRIGGER},
        "enums": {"minion_state": ["inactive", "active", "failed", "finished"]},
    }


@pytest.mark.parametrize("version", [23, 24, 25])
def test_1_catalog_matches_spec(make_database: Callable[[int | None], str], version: int) -> None:
    actual = describe(make_database(version))
    expected = expected_catalog(version)
    for part in expected:
        assert actual[part] == expected[part], part


@pytest.mark.parametrize("start", [23, 24])
def test_1_upgrading_equals_migrating_fresh(
    make_database: Callable[[int | None], str], start: int
) -> None:
    dsn = make_database(start)
    backend = PgBackend(dsn, pooled=False)
    try:
        assert backend.migrate(25) == 25
    finally:
        backend.close()
    assert describe(dsn) == expected_catalog(25)


def test_our_own_tables_are_exactly_their_migration_and_nothing_of_minion(
    make_database: Callable[[int | None], str],
) -> None:
    """minion-daemon's own set (``migrations/minion_daemon.sql``) adds tables with their
    primary keys, all named ``minion_daemon_*``, so ``describe`` can leave them out."""
    own = describe_own(make_database(23))
    paused = [
        ("queue", "text", True, None),
        ("paused", "timestamp with time zone", True, "now()"),
    ]
    unique = [
        ("key", "text", True, None),
        ("job_id", "bigint", True, None),
        ("created", "timestamp with time zone", True, None),
    ]
    assert own == {
        "tables": {
            "minion_daemon_paused_queues": {"persistence": "p", "columns": paused},
            "minion_daemon_unique_jobs": {"persistence": "p", "columns": unique},
        },
        "constraints": [
            (
                "minion_daemon_paused_queues",
                "minion_daemon_paused_queues_pkey",
                "PRIMARY KEY (queue)",
            ),
            ("minion_daemon_unique_jobs", "minion_daemon_unique_jobs_pkey", "PRIMARY KEY (key)"),
        ],
        "indexes": {
            "minion_daemon_paused_queues_pkey": "CREATE UNIQUE INDEX"
            " minion_daemon_paused_queues_pkey ON public.minion_daemon_paused_queues"
            " USING btree (queue)",
            "minion_daemon_unique_jobs_pkey": "CREATE UNIQUE INDEX"
            " minion_daemon_unique_jobs_pkey ON public.minion_daemon_unique_jobs"
            " USING btree (key)",
        },
        "sequences": [],
        "functions": [],
        "triggers": {},
        "enums": {},
    }
