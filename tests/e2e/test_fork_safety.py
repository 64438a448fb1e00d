"""No process that runs threads ever forks (issue 14): the daemon's whole process tree
(supervisor, worker processes, their fork servers, job processes) under Python 3.12, which
warns at a fork of a multi-threaded process (a DeprecationWarning, shown here every time).
With ``-W error::DeprecationWarning`` 3.12 would drop that warning silently, as it cannot
fail a fork that happened already, so the test reads the daemon's log for it.

A worker process runs its pool's threads; its job processes are forked by its fork server,
which it started before any of them existed.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers.waiting import wait_until

from minion_daemon import Minion

ROOT = Path(__file__).resolve().parents[2]
#: A virtual environment of this project's own for Python 3.12 (left out of git).
VENV = ROOT / ".venv-py312"


def _python312() -> str:
    candidates = [
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
        "/usr/bin/python3.12",
        shutil.which("python3.12") or "",
    ]
    for candidate in filter(None, candidates):
        # A pyenv shim exists for every installed version but runs only the selected one.
        answer = subprocess.run([candidate, "--version"], capture_output=True, check=False)
        if answer.returncode == 0:
            return candidate
    raise AssertionError("this test needs Python 3.12 (python3.12), which warns at such forks")


@pytest.fixture(scope="session")
def python312() -> str:
    """A Python 3.12 with the project's dependencies, and its source on the path: a ``.pth``
    file, where an editable install would first build the project in an isolated
    environment of its own, the longest part of the setup on a fresh machine."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([_python312(), "-m", "venv", str(VENV)], check=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*install, *project["dependencies"]], check=True)
    where = [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    packages = subprocess.run(where, capture_output=True, text=True, check=True).stdout.strip()
    (Path(packages) / "minion-daemon-source.pth").write_text(f"{ROOT}\n", encoding="utf-8")
    return str(python)


def test_the_daemon_never_forks_a_threaded_process(
    start: Any, minion: Minion, python312: str
) -> None:
    daemon, _ = start(python=python312, environ={"PYTHONWARNINGS": "always::DeprecationWarning"})
    ids = [minion.enqueue("add", [number, number]) for number in range(20)]

    def finished() -> bool:
        states = {job["state"] for job in minion.backend.list_jobs(0, 50, {"ids": ids})["jobs"]}
        return states == {"finished"}

    wait_until(finished, 60, "the jobs to finish in job processes")
    daemon.signal(signal.SIGTERM)
    code, log = daemon.finish()
    assert code == 0, log
    assert "is multi-threaded, use of fork()" not in log
