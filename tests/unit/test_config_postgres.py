"""The ``postgres`` section builds every process's backend through one constructor."""

from __future__ import annotations

from minion_daemon.backend import PgBackend
from minion_daemon.config import Config, parse_config


def test_a_role_is_named_in_pg_stat_activity_and_may_cap_the_connect_timeout() -> None:
    postgres = parse_config(
        {"postgres": {"application_name": "shop", "connect_timeout": 30}}, "test"
    ).postgres
    backend = PgBackend.from_settings(
        postgres, "dbname=x", role="metrics", pooled=False, max_connect_timeout=2
    )
    assert (backend.settings.application_name, backend.settings.connect_timeout) == (
        "shop metrics",
        2,
    )
    plain = PgBackend.from_settings(postgres, "dbname=x", pooled=False, max_connect_timeout=60)
    assert (plain.settings.application_name, plain.settings.connect_timeout) == ("shop", 30)


def test_the_section_satisfies_the_backends_protocol_without_the_backend_importing_it() -> None:
    backend = PgBackend.from_settings(Config().postgres, "dbname=x", pooled=False, lock_timeout=2)
    assert backend.settings.lock_timeout == 2
    assert backend.settings.conninfo == "dbname=x"
