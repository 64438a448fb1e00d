"""The connection budget: what a daemon's processes may open against what the server gives."""

from __future__ import annotations

import dataclasses

from minion_daemon.capacity import connection_budget
from minion_daemon.config import Config, MetricsConfig, PostgresConfig
from minion_daemon.model import ServerConnections

#: PostgreSQL's defaults: 100 slots, 3 of them for superusers; 97 usable, 19 kept for others.
DEFAULT_SERVER = ServerConnections(max_connections=100, reserved=3)


def test_the_defaults_fit_a_default_server() -> None:
    budget = connection_budget(Config(), 2, DEFAULT_SERVER)
    assert (budget.needed, budget.kept_for_others) == (2 * (4 + 1) + 2, 19)
    assert not budget.exceeded


def test_the_reported_fifty_ttins_exceed_it() -> None:
    # 2 + 50 processes of 4 pooled connections and a LISTEN each: 262 wanted of 97.
    assert connection_budget(Config(), 52, DEFAULT_SERVER).exceeded


def test_the_limit_is_four_fifths_of_the_usable_slots() -> None:
    # 97 usable, 19 kept: 78 may be taken. 15 processes of 5 and 2 of the daemon's own: 77.
    assert not connection_budget(Config(), 15, DEFAULT_SERVER).exceeded
    assert connection_budget(Config(), 16, DEFAULT_SERVER).exceeded


def test_pool_size_and_metrics_count() -> None:
    config = Config(
        postgres=PostgresConfig(pool_max_size=9),
        metrics=dataclasses.replace(MetricsConfig(), enabled=False),
    )
    assert connection_budget(config, 3, DEFAULT_SERVER).needed == 3 * 10 + 1
