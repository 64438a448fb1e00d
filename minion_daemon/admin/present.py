"""How values look on a page: times, ages, JSON, and the history chart's geometry; pure."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from jinja2 import Environment

from minion_daemon.model import HistoryPoint

CHART_WIDTH: Final = 720
CHART_HEIGHT: Final = 160


def moment(epoch: float | None) -> str:
    """An epoch as UTC date and time to the second; a dash for none."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float | None) -> str:
    """A duration a person reads at a glance: 850 ms, 42 s, 5 min 3 s, 2 h 10 min, 3 d 4 h."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if whole >= size:
            return f"{whole // size} {unit} {whole % size // sub_size} {sub}"
    if whole >= 60:
        return f"{whole // 60} min {whole % 60} s"
    return f"{seconds:.1f} s"


def since(epoch: float | None) -> str:
    return "-" if epoch is None else span(max(time.time() - epoch, 0))


def pretty(value: Any) -> str:
    """JSON as a person reads it; the template escapes it."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def traceback_text(result: Any) -> str | None:
    """A failed job's result as readable text when it is a string (a Python or Perl error)."""
    return result if isinstance(result, str) else None


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    finished_y: float
    finished_height: float
    failed_y: float
    failed_height: float
    label: str
    title: str


def chart(points: list[HistoryPoint]) -> list[Bar]:
    """The 24 hours as stacked bars (finished under failed) scaled to the busiest hour."""
    if not points:
        return []
    top = max(1, *(p["finished_jobs"] + p["failed_jobs"] for p in points))
    slot = CHART_WIDTH / len(points)
    bars = []
    for index, point in enumerate(points):
        finished = point["finished_jobs"] / top * (CHART_HEIGHT - 20)
        failed = point["failed_jobs"] / top * (CHART_HEIGHT - 20)
        hour = datetime.fromtimestamp(point["epoch"], UTC).strftime("%H:00")
        bars.append(
            Bar(
                x=round(index * slot + 2, 1),
                width=round(slot - 4, 1),
                finished_y=round(CHART_HEIGHT - 16 - finished, 1),
                finished_height=round(finished, 1),
                failed_y=round(CHART_HEIGHT - 16 - finished - failed, 1),
                failed_height=round(failed, 1),
                label=hour,
                title=f"{hour} UTC: {point['finished_jobs']} finished,"
                f" {point['failed_jobs']} failed",
            )
        )
    return bars


def install(environment: Environment) -> None:
    """Make the helpers available to every template."""
    environment.filters.update(moment=moment, span=span, since=since, pretty=pretty)
    environment.globals.update(
        traceback_text=traceback_text, chart_width=CHART_WIDTH, chart_height=CHART_HEIGHT
    )


#: What an action reports on the page it leads back to; codes in the URL, fixed texts here.
NOTICES: Final = {
    "retried": ("success", "All selected jobs retried."),
    "retry-failed": ("danger", "Some selected jobs could not be retried (gone, or changed)."),
    "removed": ("success", "All selected jobs removed."),
    "remove-failed": ("danger", "Some selected jobs could not be removed (active, or gone)."),
    "signalled": ("info", "Signal sent to the workers running the selected jobs."),
    "stopping": ("info", "Trying to stop the selected jobs."),
    "broadcast": ("info", "Command sent; workers read it at their next inbox check."),
    "broadcast-failed": ("danger", "No such worker: nothing was sent."),
    "unlocked": ("success", "All selected locks released."),
    "paused": ("success", "Schedule paused."),
    "resumed": ("success", "Schedule resumed."),
    "ran": ("success", "Schedule's job enqueued."),
    "schedule-missing": ("danger", "No such schedule."),
}
