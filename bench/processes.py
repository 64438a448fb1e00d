"""Starting, watching and stopping the processes under test, and reading their memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
PERL_APP = Path(__file__).resolve().parent / "perl" / "minion_app.pl"


class Started:
    """A process the bench started, with its log file (stderr, and stdout for workers)."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """TERM, then KILL after ``timeout`` seconds."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _environment(extra_path: Sequence[Path] = ()) -> dict[str, str]:
    paths = [str(path) for path in (*extra_path, ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def _log(workdir: Path, name: str) -> tuple[Path, IO[str]]:
    path = workdir / f"{name}.log"
    return path, path.open("a")


def start_agent(
    workdir: Path, name: str, role: str, dsn: str, options: dict[str, Any], *, piped: bool = False
) -> Started:
    """``python -m bench.agents ROLE`` (see bench/agents.py); ``piped``: stdin and stdout are
    pipes for the ready/go handshake, else stdout goes to the log too."""
    path, log = _log(workdir, name)
    with log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.agents", role, dsn, json.dumps(options)],
            cwd=ROOT,
            env=_environment(),
            stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else log,
            stderr=log,
            text=True,
        )
    return Started(process, path)


def start_perl_worker(workdir: Path, name: str, url: str, jobs: int) -> Started:
    """Perl Minion's own ``minion worker`` command in a Mojolicious::Lite app (production
    mode: log level info, as ours), at its fastest: a dequeue timeout of 10 ms. Its default
    of 5 s blocks a worker with free slots in a wait its ended jobs cannot cut short (about
    31 jobs/s here), which would flatter every ratio against it."""
    path, log = _log(workdir, name)
    environment = dict(os.environ, MINION_BENCH_URL=url, MOJO_MODE="production")
    with log:
        process = subprocess.Popen(
            ["perl", str(PERL_APP), "minion", "worker", "-j", str(jobs), "-D", "0.01"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            text=True,
        )
    return Started(process, path)


def start_daemon(workdir: Path, config: Path, dsn: str, task_path: Path) -> Started:
    """``minion-daemon run`` (the supervisor) with tasks from entry points under task_path."""
    path, log = _log(workdir, "daemon")
    with log:
        process = subprocess.Popen(
            [sys.executable, "-m", "minion_daemon", "run", "-c", str(config), "--dsn", dsn],
            cwd=ROOT,
            env=_environment([task_path]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            text=True,
        )
    return Started(process, path)


def stop_all(started: Sequence[Started]) -> None:
    """TERM every process at once, then wait for each."""
    for each in started:
        if each.alive():
            each.process.send_signal(signal.SIGTERM)
    for each in started:
        each.stop()


def perl_minion_available() -> bool:
    probe = ["perl", "-MMinion", "-MMojo::Pg", "-MMojolicious::Lite", "-e1"]
    try:
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def perl_minion_version() -> str:
    done = subprocess.run(
        ["perl", "-MMinion", "-e", "print $Minion::VERSION"], capture_output=True, text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB from /proc, and Pss from smaps_rollup; {} if gone."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                values["Pss"] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return {}
    return values


def cpu_seconds(pid: int) -> float:
    """CPU time of the process, of its descendants alive now (a worker's fork server), and of
    the children each of them reaped (fork mode's job processes, reaped by the fork server)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the command name.
    own = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children(pid))


def machine_cpu_seconds() -> float:
    """CPU time all cores spent busy (neither idle nor waiting for I/O) since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


class MachineCpu:
    """``with MachineCpu() as cpu:``; afterwards ``cpu.seconds`` is the CPU time every core
    spent busy meanwhile (whatever ran: the database, the processes under test, others)."""

    def __enter__(self) -> MachineCpu:
        self.seconds = 0.0
        self._start = machine_cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = machine_cpu_seconds() - self._start


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)
