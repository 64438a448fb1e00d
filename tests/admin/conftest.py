"""The admin UI's fixtures: the WSGI application on a real database, read-only or with a
password, and Werkzeug's test client in front of it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from werkzeug.test import Client, TestResponse

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials, hash_password
from minion_daemon.backend import PgBackend

PASSWORD = "correct horse battery staple"
SECRET = b"s" * 32
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


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


def csrf_of(client: Client, path: str = "/jobs") -> str:
    """The CSRF token a page of ``client``'s session carries in its forms."""
    page = client.get(path)
    found = _CSRF.search(page.text)
    assert found, "the page has a form with a CSRF token"
    return found[1]


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)
