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


def test_transaction_pooling_turns_off_session_state_and_prepared_statements() -> None:
    section = {"pool_mode": "transaction", "listen_dsn": "postgresql://u:hunter22@db/app"}
    postgres = parse_config({"postgres": section}, "test").postgres
    settings = PgBackend.from_settings(postgres, "port=6432", pooled=False).settings
    assert (settings.transaction_pooling, settings.prepare) == (True, False)
    assert settings.kwargs()["prepare_threshold"] is None
    listener = settings.listener()
    assert listener is not None
    assert (listener.conninfo, listener.transaction_pooling) == (section["listen_dsn"], False)
    assert settings.redact("could not connect: hunter22") == "could not connect: ***"


def test_without_listen_dsn_only_session_pooling_listens() -> None:
    for mode, listens in (("session", True), ("transaction", False)):
        postgres = parse_config({"postgres": {"pool_mode": mode}}, "test").postgres
        assert PgBackend.from_settings(postgres, "x=1", pooled=False).can_listen is listens


def test_prepared_statements_may_be_kept_behind_pgbouncer_or_dropped_anywhere() -> None:
    for mode, choice, prepare in (
        ("transaction", "on", True),
        ("session", "off", False),
        ("session", "auto", True),
    ):
        section = {"pool_mode": mode, "prepared_statements": choice}
        postgres = parse_config({"postgres": section}, "test").postgres
        assert PgBackend.from_settings(postgres, "x=1", pooled=False).settings.prepare is prepare
