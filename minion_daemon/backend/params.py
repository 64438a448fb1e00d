"""Checked options turned into statement parameters (JSON columns wrapped for psycopg)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from minion_daemon.options import JobOptions, RetryOptions


def job_fields(task: str, args: Sequence[Any], options: JobOptions) -> dict[str, Any]:
    """A new job's columns as plain values, in the form ``ENQUEUE_MANY`` reads from JSON,
    with ``unique`` and ``unique_for`` for a job with a key (``ENQUEUE_UNIQUE_MANY``)."""
    fields = {
        "args": list(args),
        "attempts": options.attempts,
        "delay": options.delay,
        "expire": options.expire,
        "lax": options.lax,
        "notes": dict(options.notes),
        "parents": list(options.parents),
        "priority": options.priority,
        "queue": options.queue,
        "task": task,
    }
    if options.unique is not None:
        fields |= {"unique": options.unique, "unique_for": options.unique_for}
    return fields


def enqueue_params(task: str, args: Sequence[Any], options: JobOptions) -> dict[str, Any]:
    """Parameters of ``ENQUEUE``, and of ``ENQUEUE_UNIQUE`` for a job with a key."""
    fields = job_fields(task, args, options)
    return fields | {"args": Jsonb(fields["args"]), "notes": Jsonb(fields["notes"])}


def retry_params(job_id: int, retries: int, options: RetryOptions) -> dict[str, Any]:
    """Parameters of ``RETRY_JOB``; ``None`` keeps the column's value."""
    return {
        "id": job_id,
        "retries": retries,
        "attempts": options.attempts,
        "delay": options.delay,
        "expire": options.expire,
        "lax": options.lax,
        "parents": None if options.parents is None else list(options.parents),
        "priority": options.priority,
        "queue": options.queue,
    }
