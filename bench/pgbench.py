"""pgbench baselines running the very statements of ``minion_daemon.backend.sql``.

Each ``%(name)s`` parameter of the backend's statement becomes the pgbench variable ``:name``
(given with ``-D``), so with ``-M prepared`` pgbench sends the same text with bound parameters
as our backend does; parameters that are NULL in our calls are written as ``NULL``, since
pgbench variables cannot be NULL. Prepared statements make this the database's best case: our
backend prepares the INSERT and the finish too, but plans each claim afresh.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Final

from minion_daemon.backend import sql

_PARAMETER: Final = re.compile(r"%\((\w+)\)s")

#: The values ``Minion.enqueue("noop")`` binds (``expire`` is NULL).
ENQUEUE_VALUES: Final[dict[str, str | None]] = {
    "args": "[]",
    "attempts": "1",
    "delay": "0",
    "expire": None,
    "lax": "false",
    "notes": "{}",
    "parents": "{}",
    "priority": "0",
    "queue": "default",
    "task": "noop",
}

#: The values a worker of the task ``noop`` on the default queue binds to its claim, and its
#: finish of a task that returned nothing; ``worker`` is added per run, ``id`` and ``retries``
#: of the finish come from the claim (``\gset``).
DEQUEUE_VALUES: Final[dict[str, str | None]] = {
    "id": None,
    "min_priority": None,
    "queues": "{default}",
    "tasks": "{noop}",
}
FINISH_VALUES: Final[dict[str, str | None]] = {"result": "null", "state": "finished"}


def find() -> str | None:
    """pgbench on PATH, else the newest under /usr/lib/postgresql."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)
    return candidates[0] if candidates else None


def _command(
    statement: str, values: dict[str, str | None], elsewhere: Collection[str] = ()
) -> str:
    """The statement with each parameter as a pgbench variable (those of ``values``, and those
    set ``elsewhere``: per run or by ``\\gset``), or NULL where ``values`` has ``None``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in elsewhere:
            return f":{name}"
        if name not in values:
            raise KeyError(f"pgbench script: no value for the parameter {name!r}")
        return "NULL" if values[name] is None else f":{name}"

    return _PARAMETER.sub(replace, statement.strip())


def enqueue_script() -> str:
    return _command(sql.ENQUEUE, ENQUEUE_VALUES) + ";\n"


def dequeue_finish_script() -> str:
    r"""The claim and the finish as two transactions (two commits per job, as a worker does);
    ``\gset`` hands the claimed id and retries to the finish."""
    claim = _command(sql.DEQUEUE, DEQUEUE_VALUES, elsewhere=("worker",))
    finish = _command(sql.UPDATE_RESULT, FINISH_VALUES, elsewhere=("id", "retries"))
    return f"{claim}\n\\gset\n{finish};\n"


def variables(values: dict[str, str | None]) -> list[str]:
    return [f"-D{name}={value}" for name, value in values.items() if value is not None]


def run(
    pgbench: str,
    dsn: str,
    script: str,
    workdir: Path,
    *,
    clients: int,
    defines: list[str],
    name: str,
    seconds: float | None = None,
    transactions: int | None = None,
) -> tuple[float, int]:
    """Run ``script`` with ``clients`` connections for ``seconds`` or ``transactions`` per
    client; the transactions (script runs) per second, connection time excluded, and their
    number."""
    path = workdir / f"pgbench-{name}.sql"
    path.write_text(script)
    limit = ["-T", str(round(seconds))] if seconds else ["-t", str(transactions)]
    command = [
        pgbench, "-n", "-M", "prepared", "-f", str(path), "-c", str(clients), "-j",
        str(clients), *limit, *defines, dsn,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    if done.returncode != 0 or match is None or count is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-2000:]}")
    return float(match.group(1)), int(count.group(1))
