"""The task registry and entry-point discovery, against real ``*.dist-info`` directories.

Each discovery test builds an uniquely named package and distribution under ``tmp_path`` and puts
it on ``sys.path``, so ``importlib.metadata`` finds it exactly as it finds an installed wheel;
entry-point names are unique too, so tasks installed in the environment cannot collide with them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minion_daemon.errors import MinionError
from minion_daemon.job import Job
from minion_daemon.tasks import TaskConflictError, TaskLoadError, TaskRegistry, TaskSpec
from minion_daemon.tasks.discovery import (
    ENTRY_POINT_GROUP,
    EntryPointTask,
    list_entry_points,
    load,
    load_into,
)


def first(job: object) -> None:
    """A task."""


def second(job: object) -> None:
    """Another task."""


class ClassTask(Job):
    """A task given as a Job subclass."""


# Registry


def test_a_conflict_names_the_task_and_both_sources() -> None:
    registry = TaskRegistry()
    registry.add("mail", first, source="app.py:3")
    with pytest.raises(TaskConflictError) as raised:
        registry.add("mail", second, source="plugin.py:9")
    assert str(raised.value) == "task 'mail' is registered twice: by app.py:3 and by plugin.py:9"
    assert isinstance(raised.value, MinionError)
    assert isinstance(raised.value, ValueError)
    assert registry.get("mail") == TaskSpec("mail", first, "app.py:3")


def test_the_same_callable_from_another_source_is_a_conflict() -> None:
    registry = TaskRegistry()
    registry.add("mail", first, source="a")
    with pytest.raises(TaskConflictError, match="by a and by b"):
        registry.add("mail", first, source="b")


def test_one_source_registering_different_settings_says_what_differs() -> None:
    registry = TaskRegistry()
    registry.add("mail", first, source="a", timeout=5)
    differs = r"twice by a, differently:.*timeout 5\).*timeout 6"
    with pytest.raises(TaskConflictError, match=differs):
        registry.add("mail", first, source="a", timeout=6)


def test_re_adding_the_same_registration_is_a_no_op() -> None:
    registry = TaskRegistry()
    for _ in range(3):
        registry.add("mail", first, source="a", mode="inline", timeout=2)
    assert len(registry) == 1
    assert registry.get("mail") == TaskSpec("mail", first, "a", "inline", 2)


def test_lookups_and_iteration_see_names() -> None:
    registry = TaskRegistry()
    registry.add("b", first, source="s")
    registry.add("a", ClassTask, source="s")
    assert registry.names() == frozenset({"a", "b"})
    assert sorted(registry) == ["a", "b"]
    assert ("a" in registry, "c" in registry, 3 in registry) == (True, False, False)
    assert registry.get("c") is None
    spec = registry.get("a")
    assert spec is not None
    assert spec.target is ClassTask


def test_a_spec_is_frozen() -> None:
    spec = TaskSpec("mail", first, "s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", ValueError, "task name must not be empty"),
        ("a\x00b", ValueError, "task name contains a NUL"),
        (7, TypeError, "task name"),
    ],
)
def test_bad_names_are_refused(name: object, error: type[Exception], message: str) -> None:
    registry = TaskRegistry()
    with pytest.raises(error, match=message):
        registry.add(name, first, source="s")  # type: ignore[arg-type]
    assert len(registry) == 0


def test_a_target_that_cannot_be_called_is_refused() -> None:
    with pytest.raises(TypeError, match="'mail' must be a function or a Job subclass"):
        TaskRegistry().add("mail", 42, source="s")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("mode", "thread"),
        ("mode", ""),
        ("timeout", 0),
        ("timeout", -1.5),
        ("timeout", float("nan")),
        ("timeout", "5"),
        ("timeout", True),
    ],
)
def test_bad_mode_or_timeout_names_the_option(option: str, value: object) -> None:
    registry = TaskRegistry()
    with pytest.raises(ValueError, match=rf"task 'mail': {option} must be"):
        registry.add("mail", first, source="s", **{option: value})  # type: ignore[arg-type]
    assert len(registry) == 0


@pytest.mark.parametrize(("mode", "timeout"), [("fork", None), ("inline", 0.5), ("fork", 30)])
def test_good_mode_and_timeout_are_kept(mode: str, timeout: float | None) -> None:
    registry = TaskRegistry()
    registry.add("mail", first, source="s", mode=mode, timeout=timeout)
    assert registry.get("mail") == TaskSpec("mail", first, "s", mode, timeout)


def test_the_decorator_uses_the_function_name_and_where_it_is_defined() -> None:
    registry = TaskRegistry()

    @registry.task()
    def resize(job: object) -> None:
        """Resize."""

    line = inspect.getsourcelines(resize)[1]
    where = f"{__name__}.{resize.__qualname__} ({__file__}:{line})"
    assert registry.get("resize") == TaskSpec("resize", resize, where)


def test_the_decorator_takes_a_name_and_settings_and_returns_the_function() -> None:
    registry = TaskRegistry()
    decorated = registry.task("thumbs", mode="inline", timeout=3)(first)
    assert decorated is first
    spec = registry.get("thumbs")
    assert spec is not None
    assert (spec.target, spec.mode, spec.timeout) == (first, "inline", 3)
    assert spec.source.startswith(f"{__name__}.first (")


def test_the_decorator_refuses_a_taken_name() -> None:
    registry = TaskRegistry()
    registry.add("first", second, source="elsewhere")
    with pytest.raises(TaskConflictError, match=r"by elsewhere and by .*\.first \("):
        registry.task()(first)
    assert registry.get("first") == TaskSpec("first", second, "elsewhere")


def test_add_many_registers_a_whole_batch() -> None:
    registry = TaskRegistry()
    same = TaskSpec("a", first, "s")
    registry.add_many([same, TaskSpec("b", second, "s"), same])
    assert registry.names() == {"a", "b"}


@pytest.mark.parametrize(
    "batch",
    [
        [TaskSpec("new", first, "b"), TaskSpec("taken", second, "c")],
        [TaskSpec("new", first, "b"), TaskSpec("new", second, "c")],
    ],
    ids=["against-registered", "within-batch"],
)
def test_add_many_registers_nothing_when_any_spec_conflicts(batch: list[TaskSpec]) -> None:
    registry = TaskRegistry()
    registry.add("taken", first, source="a")
    with pytest.raises(TaskConflictError):
        registry.add_many(batch)
    assert registry.names() == {"taken"}


# Discovery


class Sandbox:
    """A directory on ``sys.path`` holding one package and any number of ``*.dist-info``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = uuid.uuid4().hex[:12]
        self.package = f"acme_tasks_{self.token}"
        (root / self.package).mkdir()
        (root / self.package / "__init__.py").write_text("")

    def module(self, name: str, source: str) -> str:
        """Write ``<package>/<name>.py``; returns its dotted name."""
        (self.root / self.package / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        return f"{self.package}.{name}"

    def task_name(self, name: str) -> str:
        """A name no installed distribution can already provide."""
        return f"{name}_{self.token}"

    def distribution(self, name: str, version: str, entry_points: dict[str, str]) -> str:
        """Write a dist-info declaring ``entry_points``; returns "name version"."""
        dist = f"{name}-{self.token}"
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
        importlib.invalidate_caches()
        return f"{dist} {version}"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A fresh sandbox; the modules it imported are removed from ``sys.modules`` afterwards."""
    box = Sandbox(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield box
    for name in [n for n in sys.modules if n.partition(".")[0] == box.package]:
        del sys.modules[name]


def test_listing_reads_metadata_without_importing(sandbox: Sandbox) -> None:
    module = sandbox.module("tasks", "raise RuntimeError('imported too early')\n")
    resize = sandbox.task_name("resize")
    dist = sandbox.distribution("acme-tasks", "1.2", {resize: f"{module}:resize"})
    entries = [entry for entry in list_entry_points() if entry.name == resize]
    assert entries == [EntryPointTask(resize, f"{module}:resize", dist)]
    assert module not in sys.modules
    assert list_entry_points([resize, resize]) == entries


def test_listing_filters_to_the_requested_names(sandbox: Sandbox) -> None:
    one, two = sandbox.task_name("one"), sandbox.task_name("two")
    sandbox.distribution("acme-tasks", "1.2", {one: "x:one", two: "x:two"})
    assert [entry.name for entry in list_entry_points([two])] == [two]


def test_a_requested_name_without_entry_point_is_a_load_error(sandbox: Sandbox) -> None:
    present, absent = sandbox.task_name("present"), sandbox.task_name("absent")
    sandbox.distribution("acme-tasks", "1.2", {present: "x:y"})
    missing = rf"no {ENTRY_POINT_GROUP} entry point named '{absent}'"
    with pytest.raises(TaskLoadError, match=missing):
        list_entry_points([present, absent])


def test_a_single_string_of_names_is_refused() -> None:
    with pytest.raises(TypeError, match="not the string 'resize'"):
        list_entry_points("resize")


def test_two_distributions_with_one_name_conflict(sandbox: Sandbox) -> None:
    twin = sandbox.task_name("twin")
    one = sandbox.distribution("acme-one", "1.0", {twin: "one:twin"})
    two = sandbox.distribution("acme-two", "2.5", {twin: "two:twin"})
    with pytest.raises(TaskConflictError, match=rf"'{twin}' is provided twice") as raised:
        list_entry_points()
    assert one in str(raised.value)
    assert two in str(raised.value)


def test_a_clash_over_a_task_not_asked_for_is_not_our_problem(sandbox: Sandbox) -> None:
    twin, single = sandbox.task_name("twin"), sandbox.task_name("single")
    sandbox.distribution("acme-one", "1.0", {twin: "one:twin", single: "one:single"})
    sandbox.distribution("acme-two", "2.5", {twin: "two:twin"})
    assert [task.name for task in list_entry_points([single])] == [single]


def test_loading_imports_the_target(sandbox: Sandbox) -> None:
    module = sandbox.module("tasks", "def resize(job, *args):\n    return args\n")
    resize = sandbox.task_name("resize")
    dist = sandbox.distribution("acme-tasks", "1.2", {resize: f"{module}:resize"})
    spec = load(EntryPointTask(resize, f"{module}:resize", dist))
    assert spec.target is sys.modules[module].resize
    assert spec.source == f"entry point '{resize}' = '{module}:resize' ({dist})"
    assert (spec.mode, spec.timeout) == ("fork", None)


def test_load_into_registers_functions_and_classes(sandbox: Sandbox) -> None:
    module = sandbox.module(
        "tasks",
        "from minion_daemon.job import Job\n\n"
        "def resize(job):\n    pass\n\nclass Mail(Job):\n    pass\n",
    )
    resize, mail = sandbox.task_name("resize"), sandbox.task_name("mail")
    sandbox.distribution("acme-tasks", "1.2", {resize: f"{module}:resize", mail: f"{module}:Mail"})
    registry = TaskRegistry()
    assert sorted(load_into(registry, [resize, mail])) == sorted([resize, mail])
    spec = registry.get(mail)
    assert spec is not None
    assert spec.target is sys.modules[module].Mail


@pytest.mark.parametrize(
    ("source", "attribute", "error"),
    [
        ("def resize(job)\n", "resize", "SyntaxError"),
        ("raise RuntimeError('no config here')\n", "resize", "RuntimeError: no config here"),
        ("def other(job):\n    pass\n", "resize", "AttributeError"),
        ("import acme_no_such_module_anywhere\n", "resize", "ModuleNotFoundError"),
    ],
    ids=["syntax", "raises", "missing-attribute", "missing-import"],
)
def test_a_failed_import_is_a_load_error_naming_the_entry_point(
    sandbox: Sandbox, source: str, attribute: str, error: str
) -> None:
    module = sandbox.module("tasks", source)
    resize = sandbox.task_name("resize")
    dist = sandbox.distribution("acme-tasks", "1.2", {resize: f"{module}:{attribute}"})
    (entry,) = list_entry_points([resize])
    with pytest.raises(TaskLoadError) as raised:
        load(entry)
    named = f"cannot load entry point '{resize}' = '{module}:{attribute}' ({dist}): {error}"
    assert str(raised.value).startswith(named)
    assert type(raised.value.__cause__).__name__ == error.partition(":")[0]


def test_a_target_that_is_neither_function_nor_class_is_a_load_error(sandbox: Sandbox) -> None:
    module = sandbox.module("tasks", "resize = 42\n")
    resize = sandbox.task_name("resize")
    sandbox.distribution("acme-tasks", "1.2", {resize: f"{module}:resize"})
    expected = (
        rf"'{resize}' = .*: task '{resize}' must be a function or a Job subclass"
        r" \(or an AsyncJob one\), got 42"
    )
    with pytest.raises(TaskLoadError, match=expected):
        load_into(TaskRegistry(), [resize])


def test_load_into_registers_nothing_when_one_entry_point_fails(sandbox: Sandbox) -> None:
    good = sandbox.module("good", "def resize(job):\n    pass\n")
    bad = sandbox.module("bad", "raise RuntimeError('boom')\n")
    resize, broken = sandbox.task_name("resize"), sandbox.task_name("broken")
    sandbox.distribution("acme-tasks", "1.2", {resize: f"{good}:resize", broken: f"{bad}:x"})
    registry = TaskRegistry()
    with pytest.raises(TaskLoadError, match=broken):
        load_into(registry, [resize, broken])
    assert len(registry) == 0


def test_load_into_registers_nothing_when_a_name_is_already_taken(sandbox: Sandbox) -> None:
    module = sandbox.module("tasks", "def resize(job):\n    pass\n\ndef mail(job):\n    pass\n")
    resize, mail = sandbox.task_name("resize"), sandbox.task_name("mail")
    sandbox.distribution("acme-tasks", "1.2", {resize: f"{module}:resize", mail: f"{module}:mail"})
    registry = TaskRegistry()
    registry.add(mail, first, source="add_task() at app.py:12")
    both = r"by add_task\(\) at app\.py:12 and by entry point"
    with pytest.raises(TaskConflictError, match=both):
        load_into(registry, [resize, mail])
    assert registry.names() == {mail}


class NotAJob:
    """A class that is no Job subclass."""


def test_99_a_class_that_is_no_job_subclass_is_refused() -> None:
    with pytest.raises(TypeError, match="'plain' must be a function or a Job subclass"):
        TaskRegistry().add("plain", NotAJob, source="s")
