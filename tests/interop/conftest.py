"""Fixtures of the interop tests, which run the real Perl Minion (Debian's libminion-perl)."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(scope="session", autouse=True)
def _perl_minion_installed() -> None:
    """Its absence fails the interop tests, never skips them: ``tests/run`` installs it."""
    found = subprocess.run(
        ["perl", "-MMinion", "-MMojo::Pg", "-e", "print $Minion::VERSION"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail("Perl Minion is missing: apt-get install libminion-perl libmojo-pg-perl")
