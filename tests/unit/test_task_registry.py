"""The task registry: conflicts name both sources, batches are atomic, entry points load."""

from __future__ import annotations

from pathlib import Path

import pytest

from minion_daemon.tasks import TaskConflictError, TaskLoadError, TaskRegistry, TaskSpec
from minion_daemon.tasks.discovery import list_entry_points, load_into


def first(job: object) -> None:
    """A task."""


def second(job: object) -> None:
    """Another task."""


def test_a_name_registered_twice_names_both_sources() -> None:
    registry = TaskRegistry()
    registry.add("mail", first, source="app.py:3")
    registry.add("mail", first, source="app.py:3")  # the same registration again is a no-op
    twice = r"'mail' is registered twice: by app\.py:3 and by b"
    with pytest.raises(TaskConflictError, match=twice):
        registry.add("mail", second, source="b")
    assert registry.get("mail") == TaskSpec("mail", first, "app.py:3")


def test_a_batch_with_a_conflict_registers_nothing() -> None:
    registry = TaskRegistry()
    registry.add("taken", first, source="a")
    batch = [TaskSpec("new", first, "b"), TaskSpec("taken", second, "c")]
    with pytest.raises(TaskConflictError):
        registry.add_many(batch)
    assert registry.names() == {"taken"}


def test_decorator_names_the_function_and_where_it_is() -> None:
    registry = TaskRegistry()

    @registry.task(timeout=5)
    def resize(job: object) -> None:
        """Resize."""

    spec = registry.get("resize")
    assert spec is not None
    assert (spec.target, spec.timeout, spec.mode) == (resize, 5, "fork")
    assert "test_task_registry.py:" in spec.source
    assert "resize" in registry
    assert len(registry) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "thread"}, "mode must be fork or inline"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": "5"}, "timeout must be a positive number"),
    ],
)
def test_bad_mode_or_timeout_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskRegistry().add("x", first, source="s", **kwargs)  # type: ignore[arg-type]


def _distribution(root: Path, name: str, entry_points: str) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[minion_daemon.tasks]\n{entry_points}\n")


def test_entry_points_are_listed_without_importing_and_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "fine_tasks.py").write_text("def fine(job):\n    return 1\n")
    _distribution(tmp_path, "acme_tasks", "fine = fine_tasks:fine\nboom = explodes_on_import:x")
    monkeypatch.syspath_prepend(str(tmp_path))
    listed = {task.name: task for task in list_entry_points()}
    assert listed["boom"].distribution == "acme_tasks 1.0"
    registry = TaskRegistry()
    assert load_into(registry, ["fine"]) == ["fine"]
    spec = registry.get("fine")
    assert spec is not None
    assert spec.source == "entry point 'fine' = 'fine_tasks:fine' (acme_tasks 1.0)"
    with pytest.raises(TaskLoadError, match=r"'boom' = 'explodes_on_import:x'.*RuntimeError: boom"):
        load_into(registry, ["boom"])
    with pytest.raises(TaskLoadError, match=r"no minion_daemon\.tasks entry point named 'absent'"):
        list_entry_points(["absent"])


def test_two_distributions_with_one_task_name_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _distribution(tmp_path, "one_dist", "twin = one:twin")
    _distribution(tmp_path, "two_dist", "twin = two:twin")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskConflictError, match=r"'twin' is provided twice") as raised:
        list_entry_points()
    assert "one_dist 1.0" in str(raised.value)
    assert "two_dist 1.0" in str(raised.value)
