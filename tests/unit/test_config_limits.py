"""Fleet-wide limits per task: the rate's ``N/PERIOD`` syntax, how long a slot is held, the
config keys ``workers.tasks.<name>.concurrency`` and ``.rate``, and the registration's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minion_daemon.config import ConfigError, load_config, parse_config
from minion_daemon.limits import DEFAULT_HOLD, Rate, TaskLimit, hold_seconds
from minion_daemon.model import Mode
from minion_daemon.tasks import TaskRegistry

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("10/s", 10, 1),
        ("100/1m", 100, 60),
        ("5/30s", 5, 30),
        ("1000/h", 1000, 3600),
        ("2/12h", 2, 43200),
        ("50/1d", 50, 86400),
        (" 3 / 2m ", 3, 120),
    ],
)
def test_a_rate_is_starts_per_whole_seconds(text: str, count: int, period: int) -> None:
    assert Rate.parse(text) == Rate(count, period)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10", 'a rate as "N/PERIOD"'),
        ("10/ms", 'a rate as "N/PERIOD"'),
        ("ten/s", 'a rate as "N/PERIOD"'),
        ("1.5/s", 'a rate as "N/PERIOD"'),
        (10, 'a rate as "N/PERIOD"'),
        ("0/s", "rate count from 1 to 1000000, got 0"),
        ("10/0s", "rate period from 1 to 86400, got 0"),
        ("10/2d", "rate period from 1 to 86400, got 172800"),
    ],
)
def test_a_rate_that_is_not_one_says_what_is_wrong(text: object, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Rate.parse(text)


def test_a_slot_is_held_past_the_timeout_or_an_hour_without_one() -> None:
    assert hold_seconds(None) == DEFAULT_HOLD == 3600
    assert hold_seconds(1.5) == 62
    assert hold_seconds(600) == 660


@pytest.mark.parametrize("concurrency", [0, -1, True, 2.5])
def test_a_concurrency_is_a_whole_number_from_one(concurrency: object) -> None:
    with pytest.raises(ValueError, match="concurrency from 1"):
        TaskLimit(concurrency)  # type: ignore[arg-type]


def test_the_config_sets_a_tasks_limits() -> None:
    config = parse_config(
        {
            "workers": {
                "tasks": {
                    "resize": {"concurrency": 2},
                    "mail": {"rate": "100/1m", "timeout": 30},
                    "api": {"concurrency": 4, "rate": "10/s"},
                    "plain": {"mode": "inline"},
                }
            }
        },
        "test",
    )
    tasks = config.workers.tasks
    assert tasks["resize"].limit == TaskLimit(2)
    assert tasks["mail"].limit == TaskLimit(None, Rate(100, 60))
    assert tasks["api"].limit == TaskLimit(4, Rate(10, 1))
    assert tasks["plain"].limit is None, "no limit key keeps the registered limits"


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"concurrency": 0}, "mail.concurrency: expected an integer from 1 to 1000000, got 0"),
        ({"concurrency": "2"}, "mail.concurrency: expected an integer from 1 to 1000000"),
        ({"rate": "fast"}, 'mail.rate: expected a rate as "N/PERIOD"'),
        ({"rate": "0/s"}, "mail.rate: expected rate count from 1 to 1000000, got 0"),
        ({"rate": 10}, 'mail.rate: expected a rate as "N/PERIOD"'),
        ({"limit": 3}, "mail: expected a mapping with keys of mode, timeout,"),
    ],
)
def test_limit_errors_name_the_task_and_the_key(task: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"site.yaml: workers.tasks.{message}")):
        parse_config({"workers": {"tasks": {"mail": task}}}, "site.yaml")


def test_registration_sets_limits_and_the_config_replaces_them() -> None:
    tasks = TaskRegistry()

    @tasks.task(concurrency=3, rate="5/30s")
    def resize(job: object) -> None: ...

    def limit() -> TaskLimit:
        spec = tasks.get("resize")
        assert spec is not None
        return spec.limit

    assert limit() == TaskLimit(3, Rate(5, 30))
    tasks.configure("resize", mode=Mode.FORK, timeout=None)
    assert limit() == TaskLimit(3, Rate(5, 30)), "no limit given: kept"
    tasks.configure("resize", mode=Mode.FORK, timeout=None, limit=TaskLimit(1))
    assert limit() == TaskLimit(1)


def test_the_readmes_limits_example_is_valid(tmp_path: Path) -> None:
    """The README's example of limit keys loads as it says."""
    text = README.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(workers:\n  tasks:\n[^`]*?concurrency:.*?)```", text, re.DOTALL)
    assert example is not None, "README.md shows a workers.tasks example with limit keys"
    path = tmp_path / "config.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    tasks = load_config(path).workers.tasks
    assert any(settings.limit is not None for settings in tasks.values())
