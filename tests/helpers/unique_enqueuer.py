"""One racer of the unique-jobs tests: python -m helpers.unique_enqueuer DSN OPTIONS_JSON.

It connects and warms up, prints ``ready``, waits for a line on stdin (so that every racer
starts at the same moment), then enqueues ``count`` jobs of task ``race`` with the options
given (``unique``, ``unique_for``) one after another and prints the ids it got back as a JSON
list.
"""

from __future__ import annotations

import json
import sys

from minion_daemon import Minion
from minion_daemon.backend import PgBackend


def main() -> None:
    dsn, options = sys.argv[1], json.loads(sys.argv[2])
    count = options.pop("count")
    minion = Minion(PgBackend(dsn, pooled=False, auto_migrate="off"))
    try:
        assert minion.backend.schema_version  # connected, schema checked: the race is all
        print("ready", flush=True)
        sys.stdin.readline()
        ids = [minion.enqueue("race", [], **options) for _ in range(count)]
        print(json.dumps(ids), flush=True)
    finally:
        minion.close()


if __name__ == "__main__":
    main()
