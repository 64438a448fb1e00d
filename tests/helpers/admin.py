"""What the admin UI's tests share besides fixtures: the test password and session secret,
and readers of a response. Fixtures live in tests/admin/conftest.py; a test importing from a
module named ``conftest`` got whichever conftest was imported first (tests/interop has one)."""

from __future__ import annotations

import re

from werkzeug.test import Client, TestResponse

PASSWORD = "correct horse battery staple"
SECRET = b"s" * 32
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(client: Client, path: str = "/jobs") -> str:
    """The CSRF token a page of ``client``'s session carries in its forms."""
    page = client.get(path)
    found = _CSRF.search(page.text)
    assert found, "the page has a form with a CSRF token"
    return found[1]


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)
