"""Fixtures of the fuzz tests: module-scoped, because ``@given`` runs its examples inside one
call of the test, where a function-scoped fixture would be shared without being reset."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from minion_daemon import Minion
from minion_daemon.backend import PgBackend


@pytest.fixture(scope="module")
def module_dsn(make_module_database: Callable[[int | None], str]) -> str:
    """A database of this module's own, at the latest schema, dropped after the module."""
    return make_module_database(25)


@pytest.fixture(scope="module")
def module_backend(module_dsn: str) -> Iterator[PgBackend]:
    backend = PgBackend(module_dsn, min_size=0, max_size=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def module_minion(module_backend: PgBackend) -> Minion:
    return Minion(module_backend)
