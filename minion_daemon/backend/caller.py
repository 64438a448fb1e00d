"""What code above the backend needs of psycopg to hand it a connection, without importing it:
the type of a caller's own connection, on which a job is enqueued inside the caller's
transaction, and a DSN made from a framework's connection keywords."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo

#: A psycopg 3 connection of the caller's (any row factory): ``enqueue(..., conn=...)`` runs on
#: it and leaves the commit to its owner.
CallerConnection: TypeAlias = psycopg.Connection[Any]
#: The same for :class:`~minion_daemon.aio.minion.AsyncMinion`: a psycopg 3 async connection.
AsyncCallerConnection: TypeAlias = psycopg.AsyncConnection[Any]


def conninfo(params: Mapping[str, object]) -> str:
    """A libpq DSN of the keywords among ``params`` that libpq knows, ``None`` values left out.

    The rest, such as psycopg's own ``connect()`` arguments (``cursor_factory``,
    ``prepare_threshold``) and a framework's options, have no place in a DSN.
    """
    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    return make_conninfo(
        **{key: str(value) for key, value in params.items() if key in known and value is not None}
    )
