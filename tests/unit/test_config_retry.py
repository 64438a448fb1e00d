"""Retry policies: the exponential backoff, which exceptions retry, and their config keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minion_daemon.config import ConfigError, load_config, parse_config
from minion_daemon.retry import Exponential, RetryPolicy

README = Path(__file__).resolve().parents[2] / "README.md"


class PermanentError(ValueError):
    """A failure no retry can cure."""


def test_exponential_grows_by_factor_up_to_the_maximum() -> None:
    backoff = Exponential(base=2, factor=3, maximum=50)
    assert [backoff.delay(retries, 0.5) for retries in range(5)] == [2, 6, 18, 50, 50]


def test_jitter_takes_up_to_its_fraction_off() -> None:
    backoff = Exponential(base=10, factor=2, maximum=1000, jitter=0.25)
    assert backoff.delay(2, 0.0) == 40
    assert backoff.delay(2, 0.5) == 35
    assert 30 < backoff.delay(2, 0.999) < 31
    assert all(30 < backoff(2) <= 40 for _ in range(100))


def test_a_job_that_retried_very_often_waits_the_maximum() -> None:
    assert Exponential(base=1, factor=2, maximum=600).delay(5000, 0.0) == 600


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"base": -1}, "base from 0 up, got -1"),
        ({"factor": 0.5}, "factor from 1 up, got 0.5"),
        ({"maximum": float("inf")}, "maximum from 0 up, got inf"),
        ({"jitter": 1.5}, "jitter from 0 to 1, got 1.5"),
        ({"jitter": True}, "jitter from 0 to 1, got True"),
    ],
)
def test_exponential_refuses_what_cannot_be_a_delay(
    settings: dict[str, float], problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Exponential(**settings)


def test_names_match_the_class_and_its_bases_plainly_or_qualified() -> None:
    error = PermanentError("no")
    qualified = f"{__name__}.PermanentError"
    for name in ("PermanentError", qualified, "ValueError", "builtins.ValueError", "Exception"):
        assert not RetryPolicy(no_retry_on=(name,)).retries(error), name
    assert RetryPolicy(no_retry_on=("KeyError", "other.PermanentError")).retries(error)


def test_no_retry_on_wins_over_retry_on_and_retry_on_restricts() -> None:
    policy = RetryPolicy.of(retry_on=[ValueError], no_retry_on=[PermanentError])
    assert policy.retries(ValueError("again"))
    assert not policy.retries(PermanentError("never"))
    assert not policy.retries(KeyError("not listed"))
    assert policy.no_retry_on == (f"{__name__}.PermanentError",)


def test_a_lone_string_is_no_list_of_names() -> None:
    with pytest.raises(TypeError, match="in a list, not the string 'KeyError'"):
        RetryPolicy.of(retry_on="KeyError")


def test_the_default_policy_retries_everything_with_the_minions_backoff() -> None:
    policy = RetryPolicy()
    assert policy.backoff is None
    assert policy.retries(PermanentError("x"))


def test_config_tasks_take_backoff_and_exception_names() -> None:
    config = parse_config(
        {
            "workers": {
                "tasks": {
                    "mail": {
                        "timeout": 30,
                        "backoff": {"base": 5, "factor": 2, "maximum": 600, "jitter": 0.1},
                        "no_retry_on": ["acme.errors.Permanent"],
                    },
                    "only": {"retry_on": ["TimeoutError"]},
                    "plain": {"mode": "inline"},
                    "minion": {"backoff": "minion", "no_retry_on": []},
                }
            }
        },
        "test.yaml",
    )
    tasks = config.workers.tasks
    assert tasks["mail"].retry == RetryPolicy(
        Exponential(5, 2, 600, 0.1), None, ("acme.errors.Permanent",)
    )
    assert tasks["only"].retry == RetryPolicy(None, ("TimeoutError",), ())
    assert tasks["plain"].retry is None, "no retry key keeps the registered policy"
    assert tasks["minion"].retry == RetryPolicy()


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"backoff": "fast"}, "mail.backoff: expected minion, or a mapping with keys of base,"),
        ({"backoff": {"base": 1, "cap": 9}}, "mail.backoff: expected minion, or a mapping"),
        ({"backoff": {"factor": 0}}, "mail.backoff: expected factor from 1 up, got 0"),
        ({"backoff": {"jitter": 2}}, "mail.backoff: expected jitter from 0 to 1, got 2"),
        ({"retry_on": "ValueError"}, "mail.retry_on: expected a list of non-empty strings"),
        ({"no_retry_on": [""]}, "mail.no_retry_on: expected a list of non-empty strings"),
        ({"no_retry_on": ["acme."]}, "mail: expected class names, plain or module-qualified"),
        ({"retries": 3}, "mail: expected a mapping with keys of mode, timeout, backoff,"),
        ({"timeout": 0}, "mail.timeout: expected a number of seconds from 0.001"),
        ({"mode": "thread"}, "mail.mode: expected one of fork, inline, async, got 'thread'"),
    ],
)
def test_config_errors_name_the_task_and_the_key(
    tmp_path: Path, task: dict[str, object], message: str
) -> None:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"workers": {"tasks": {"mail": task}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: workers.tasks.{message}")):
        load_config(path)


def test_the_readmes_config_example_is_valid(tmp_path: Path) -> None:
    """The README's example of retry keys loads as it says."""
    text = README.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(workers:\n  tasks:\n.*?)```", text, re.DOTALL)
    assert example is not None, "README.md shows a workers.tasks example with retry keys"
    path = tmp_path / "config.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    tasks = load_config(path).workers.tasks
    assert any(settings.retry is not None for settings in tasks.values())
