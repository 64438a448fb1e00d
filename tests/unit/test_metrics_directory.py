"""The metrics directory of a supervisor: made with its pid in the name; a dead one's removed."""

from __future__ import annotations

import os
from pathlib import Path

from minion_daemon.metrics import DIRECTORY_PREFIX, make_directory


def _beyond_pid_max() -> int:
    """A pid no process can have."""
    return int(Path("/proc/sys/kernel/pid_max").read_text(encoding="utf-8")) + 1


def test_a_new_directory_names_its_supervisor(tmp_path: Path) -> None:
    made = make_directory(str(tmp_path))
    assert made.parent == tmp_path
    assert made.name.startswith(f"{DIRECTORY_PREFIX}{os.getpid()}-")
    assert made.is_dir()


def test_dead_supervisors_directories_go_and_live_ones_stay(tmp_path: Path) -> None:
    dead = tmp_path / f"{DIRECTORY_PREFIX}{_beyond_pid_max()}-abc"
    earlier_life = tmp_path / f"{DIRECTORY_PREFIX}{os.getpid()}-abc"  # our pid, before us
    live = tmp_path / f"{DIRECTORY_PREFIX}1-abc"  # init runs as long as the machine
    unnamed = tmp_path / f"{DIRECTORY_PREFIX}abc123"  # no pid: not known to be ours
    other = tmp_path / "something-else"
    for directory in (dead, earlier_life, live, unnamed, other):
        directory.mkdir()
        (directory / "counter_1.db").write_bytes(b"")

    made = make_directory(str(tmp_path))

    assert set(tmp_path.iterdir()) == {live, unnamed, other, made}
