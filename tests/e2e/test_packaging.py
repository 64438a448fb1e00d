"""The wheel users install carries the schema: sdist, wheel from that sdist, clean venv, migrate."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True, check=False,
        timeout=600,
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow(seconds=15)
def test_installed_wheel_migrates_without_the_source_tree(
    tmp_path: Path, make_database: Callable[[int | None], str]
) -> None:
    dist = tmp_path / "dist"
    # Without --sdist/--wheel, build makes the sdist and then the wheel from that sdist.
    _run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        assert any(name.endswith("/migrations/pg.sql") for name in names)
        assert any(name.endswith("/LICENSE") for name in names)
        assert any(name.endswith("/CHANGELOG.md") for name in names)
    with zipfile.ZipFile(wheel) as archive:
        assert "minion_daemon/migrations/pg.sql" in archive.namelist()
        assert any(name.endswith(".dist-info/licenses/LICENSE") for name in archive.namelist())
        assert "minion_daemon/admin/templates/jobs.html" in archive.namelist()
        assert "minion_daemon/admin/static/admin.js" in archive.namelist()
        # Django finds a management command by its file: the app ships its package whole.
        command = "minion_daemon/contrib/django/management/commands/minion_daemon.py"
        assert command in archive.namelist()

    # A venv without Django or SQLAlchemy: the daemon needs neither (their extras are apart).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel)
    dsn = make_database(None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    output = _run(venv / "bin" / "minion-daemon", "migrate", "--dsn", dsn, cwd=elsewhere)
    assert output == "25\n"
    assert _run(venv / "bin" / "minion-daemon", "migrate", "--to", "23", "--dsn", dsn) == "23\n"
