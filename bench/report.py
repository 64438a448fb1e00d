"""Results: rows of measurements with their baselines and targets, as markdown and JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """A goal: the ratio to the baseline at least ``value`` (``kind="ratio"``) or at most it
    (``kind="max_ratio"``: CPU per job), or the measurement itself at most ``value``
    (``kind="max"``)."""

    kind: str
    value: float

    def text(self, unit: str) -> str:
        if self.kind == "ratio":
            return f"≥ {self.value:g}x"
        if self.kind == "max_ratio":
            return f"≤ {self.value:g}x"
        return f"≤ {self.value:g} {unit}"

    def met(self, ours: float, baseline: float | None) -> bool | None:
        if self.kind == "max":
            return ours <= self.value
        if baseline is None or baseline <= 0:
            return None
        if self.kind == "max_ratio":
            return ours / baseline <= self.value
        return ours / baseline >= self.value


def at_least(ratio: float) -> Target:
    return Target("ratio", ratio)


def at_most(value: float) -> Target:
    return Target("max", value)


def at_most_ratio(ratio: float) -> Target:
    return Target("max_ratio", ratio)


@dataclass
class Row:
    """One line of the table. ``ours`` is ``None`` when it could not be measured (``note``
    says why); ``baseline`` is what the ratio divides by, named by ``baseline_name``."""

    section: str
    name: str
    ours: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or self.baseline <= 0:
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ours is None:
            return None
        return self.target.met(self.ours, self.baseline)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = None if self.target is None else self.target.text(self.unit)
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


def number(value: float | None, unit: str = "") -> str:
    """A figure with three significant digits at most (and its unit), or ``n/a``."""
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def markdown(rows: Sequence[Row]) -> str:
    """The table: measurement, ours, baseline, ratio, target, met."""
    lines = [
        "| measurement | ours | baseline | ratio | target | met? |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        baseline = number(row.baseline, row.unit) if row.baseline is not None else ""
        if row.baseline_name and row.baseline is not None:
            baseline = f"{baseline} ({row.baseline_name})"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        target = row.target.text(row.unit) if row.target else ""
        met = {True: "yes", False: "**no**", None: "" if row.target is None else "n/a"}[row.met]
        ours = number(row.ours, row.unit)
        if row.note:
            ours = f"{ours} ({row.note})"
        lines.append(
            f"| {row.section}: {row.name} | {ours} | {baseline} | {ratio} | {target} | {met} |"
        )
    return "\n".join(lines) + "\n"


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    document = {**meta, "rows": [row.as_json() for row in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
