"""``python -m bench``: one fresh database, every measurement, a markdown table and a JSON file.

Progress goes to stderr, the table to stdout, the JSON to ``--out`` (default
bench/results.json, or bench/results-quick.json with ``--quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    admin,
    coroutines,
    enqueue,
    fleet,
    latency,
    memory,
    pgbench,
    scale,
    throughput,
    tracing,
)
from bench.context import FULL, QUICK, Context, Progress
from bench.database import Database, Server
from bench.processes import ROOT, perl_minion_available, perl_minion_version
from bench.report import Row, markdown, write_json
from minion_daemon import Minion, worker
from minion_daemon.backend import PgBackend

PHASES: dict[str, Callable[[Context], list[Row]]] = {
    "enqueue": enqueue.run,
    "unique": enqueue.unique,
    "throughput": throughput.run,
    "latency": latency.run,
    "memory": memory.run,
    "scale": scale.run,
    "admin": admin.run,
    "async": coroutines.run,
    "tracing": tracing.run,
    "fleet": fleet.run,
}
#: Debian 12's Perl Minion (10.25) knows schema 23 and refuses to work on a newer one.
PERL_SCHEMA = 23


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (about 2 min)")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument("--dsn", help="PostgreSQL server (default: $MINION_DAEMON_BENCH_DSN, "
                        "else host=127.0.0.1 port=5432 user=postgres)")
    parser.add_argument("--only", dest="phases", type=lambda text: text.split(","),
                        default=list(PHASES),
                        help=f"comma-separated phases of: {', '.join(PHASES)} (default: all)")
    # 100: where the claim's and the finish's fixed costs have shrunk to a few percent of a
    # job's (50 gave about half the rate of 100 here, 200 a quarter more than 100).
    parser.add_argument("--batch", type=int, default=100, help="batched mode's jobs per claim")
    parser.add_argument("--no-perl", action="store_true", help="leave out the Perl peer")
    return parser.parse_args(argv)


def batch_supported() -> bool:
    """Whether this minion-daemon's Worker takes the ``batch`` setting (an older checkout,
    measured for comparison, may not)."""
    settings = getattr(worker, "WorkerSettings", None)
    if settings is not None:
        return "batch" in {field.name for field in dataclasses.fields(settings)}
    defaults = getattr(worker, "DEFAULT_STATUS", {})
    return "batch" in defaults or '"batch"' in inspect.getsource(worker)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "?"


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False,
                              cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def _machine(server: Server, pgbench_path: str | None, perl: bool) -> dict[str, Any]:
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "postgresql": server.version(),
        "postgresql_settings": server.settings(),
        "python": platform.python_version(),
        "pgbench": _output([pgbench_path, "--version"]) if pgbench_path else None,
        "perl_minion": perl_minion_version() if perl else None,
        "commit": _output(["git", "rev-parse", "--short", "HEAD"]),
        "uncommitted_changes": bool(_output(["git", "status", "--porcelain", "minion_daemon"])),
        "load_average_at_start": os.getloadavg(),
    }


def _minion(dsn: str, schema: int | None = None) -> Minion:
    return Minion(PgBackend(dsn, max_schema_version=schema, application_name="bench"))


def _phase(context: Context, phase: str) -> list[Row]:
    """The phase's rows; one that breaks is reported as a row, and the run goes on."""
    context.progress.say(f"== {phase}")
    try:
        return PHASES[phase](context)
    except Exception as error:  # noqa: BLE001 - the other phases still have figures to give
        context.progress.say(f"{phase} FAILED:\n{traceback.format_exc()}")
        return [Row(phase, "(the whole phase)", None, "", note=f"failed: {error}"[:120])]


def _run(
    arguments: argparse.Namespace, server: Server, context_for: Callable[[Database], Context]
) -> tuple[list[Row], Context | None]:
    """Create the databases, run the phases, drop the databases."""
    rows: list[Row] = []
    context = None
    try:
        context = context_for(server.create())
        if not arguments.no_perl and perl_minion_available():
            context.perl = server.create("_perl", PERL_SCHEMA)
            context.perl_minion = _minion(context.perl.dsn, PERL_SCHEMA)
        for phase in arguments.phases:
            rows.extend(_phase(context, phase))
    finally:
        if context is not None:
            for minion in (context.minion, context.perl_minion):
                if minion is not None:
                    minion.close()
            for database in (context.main, context.perl):
                if database is not None:
                    database.close()
        server.drop_created()
    return rows, context


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    unknown = [phase for phase in arguments.phases if phase not in PHASES]
    if unknown:
        print(f"bench: unknown phase(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    sizes = QUICK if arguments.quick else FULL
    out = arguments.out or ROOT / "bench" / (
        "results-quick.json" if arguments.quick else "results.json"
    )
    progress = Progress()
    server = Server(arguments.dsn)
    server.drop_stale()
    pgbench_path = pgbench.find()
    machine = _machine(server, pgbench_path, not arguments.no_perl and perl_minion_available())
    _announce(progress, machine, pgbench_path)
    with tempfile.TemporaryDirectory(prefix="minion-daemon-bench-") as workdir:

        def context_for(main_db: Database) -> Context:
            return Context(
                sizes=sizes, main=main_db, minion=_minion(main_db.dsn), workdir=Path(workdir),
                progress=progress, pgbench=pgbench_path, batch=arguments.batch,
                batch_supported=batch_supported(),
            )

        progress.say("creating the databases")
        rows, context = _run(arguments, server, context_for)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "bench/run" + (" --quick" if arguments.quick else ""),
        "sizes": sizes.__dict__,
        "batch": arguments.batch,
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
        "duration_seconds": round(progress.elapsed(), 1),
        "details": context.details if context else {},
    }
    write_json(out, rows, meta)
    print(markdown(rows), end="")
    progress.say(f"done in {progress.elapsed():.0f} s; JSON in {out}")
    return 0


def _announce(progress: Progress, machine: dict[str, Any], pgbench_path: str | None) -> None:
    load = machine["load_average_at_start"][0]
    if load > 0.5:
        progress.say(f"warning: load average {load:.2f} at start; other work on this machine "
                     "skews the figures")
    progress.say(f"{machine['cpus']} x {machine['cpu_model']}, PostgreSQL "
                 f"{machine['postgresql']}, Python {machine['python']}, Perl Minion "
                 f"{machine['perl_minion'] or 'absent'}, pgbench {pgbench_path or 'absent'}")
