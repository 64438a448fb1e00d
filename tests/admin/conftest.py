"""The admin UI's fixtures: the WSGI application on a real database, read-only or with a
password, and Werkzeug's test client in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.admin import PASSWORD, SECRET
from werkzeug.test import Client

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials, hash_password
from minion_daemon.backend import PgBackend


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def admin_backend(dsn: str) -> Iterator[PgBackend]:
    backend = PgBackend(dsn, min_size=0, max_size=2, auto_migrate=False)
    yield backend
    backend.close()


@pytest.fixture
def read_only(admin_backend: PgBackend) -> Client:
    """The UI as it is with no credentials configured."""
    return Client(AdminApp(admin_backend, Credentials(None, None), SECRET))


@pytest.fixture
def guarded(admin_backend: PgBackend, password_hash: str) -> Client:
    """The UI with a password, not logged in."""
    return Client(AdminApp(admin_backend, Credentials(password_hash, None), SECRET))


@pytest.fixture
def signed_in(guarded: Client) -> Client:
    response = guarded.post("/login", data={"password": PASSWORD})
    assert response.status_code == 303, response.text
    return guarded

