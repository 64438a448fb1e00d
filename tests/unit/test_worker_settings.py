"""WorkerSettings: one frozen, typed object, Perl's ``status`` derived from it."""

from __future__ import annotations

import dataclasses

import pytest

from minion_daemon.config import WorkersConfig
from minion_daemon.worker import WorkerSettings


def test_perl_status_keys_are_derived_from_the_settings() -> None:
    settings = WorkerSettings.of(jobs=8, queues=["a", "b"], limits={"slow": 1})
    assert settings.status() == {
        "command_interval": 10.0,
        "dequeue_timeout": 5.0,
        "dispatch_interval": 30.0,
        "heartbeat_interval": 300.0,
        "jobs": 8,
        "limits": {"slow": 1},
        "queues": ["a", "b"],
        "repair_interval": 21600.0,
        "spare": 1,
        "spare_min_priority": 1,
        "type": "Python",
        "batch": 1,
        "async_jobs": 100,
    }


def test_settings_are_frozen_and_replaced_whole() -> None:
    settings = WorkerSettings.of(jobs=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.jobs = 3  # type: ignore[misc]
    assert settings.replace(jobs=3).jobs == 3
    assert settings.jobs == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jobs": -1}, "worker: jobs must be a whole number of at least 0"),
        ({"batch": 0}, "worker: batch must be a whole number of at least 1"),
        ({"jobs": True}, "worker: jobs must be a whole number"),
        ({"dequeue_timeout": "5"}, "worker: dequeue_timeout must be a number of seconds"),
        ({"limits": {"t": -2}}, r"worker: limits\['t'\] must be a whole number"),
        ({"jobz": 4}, "worker: unknown settings jobz"),
    ],
)
def test_a_bad_setting_is_an_error_that_names_it(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkerSettings.of(**values)


def test_a_daemon_worker_leaves_repair_and_dispatch_to_its_supervisor() -> None:
    settings = WorkerSettings.from_config(WorkersConfig(jobs=6, liveness_timeout=2))
    assert (settings.jobs, settings.repair_interval, settings.dispatch_interval) == (6, 0, 0)
    assert settings.pulse_interval == 0.5, "several pulses per liveness timeout"
