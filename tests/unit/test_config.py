"""Config loading: typed values, ${VAR} expansion, and errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from minion_daemon.config import ConfigError, load_config, parse_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_postgres_section() -> None:
    config = parse_config(None, "test.yaml")
    assert config.postgres.dsn is None
    assert config.postgres.max_schema_version == 25
    assert config.postgres.auto_migrate == "create"


def test_values_and_environment_expansion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASS_FOR_TEST", "s3cret")
    path = _write(
        tmp_path,
        "postgres:\n  dsn: postgresql://app:${PGPASS_FOR_TEST}@db/minion\n"
        "  max_schema_version: 23\n  auto_migrate: false\n",
    )
    config = load_config(path)
    assert config.postgres.dsn == "postgresql://app:s3cret@db/minion"
    assert config.postgres.max_schema_version == 23
    assert config.postgres.auto_migrate == "off"


@pytest.mark.parametrize(
    ("value", "choice"),
    [
        ("create", "create"),
        ("upgrade", "upgrade"),
        ("off", "off"),
        (True, "upgrade"),
        (False, "off"),
    ],
)
def test_auto_migrate_choices_and_the_old_boolean_spelling(value: object, choice: str) -> None:
    config = parse_config({"postgres": {"auto_migrate": value}}, "test.yaml")
    assert config.postgres.auto_migrate == choice


def test_a_bare_off_in_yaml_is_the_off_choice(tmp_path: Path) -> None:
    """YAML 1.1 reads a bare ``off`` as false, which is the old spelling of the same choice."""
    config = load_config(_write(tmp_path, "postgres:\n  auto_migrate: off\n"))
    assert config.postgres.auto_migrate == "off"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("postgres:\n  dsn: 5\n", r"postgres\.dsn: expected a non-empty string, got 5"),
        (
            "postgres:\n  max_schema_version: 22\n",
            r"postgres\.max_schema_version: expected an integer from 23 to 25",
        ),
        (
            "postgres:\n  auto_migrate: 1\n",
            r"postgres\.auto_migrate: expected one of create, upgrade, off, got 1",
        ),
        (
            "postgres:\n  pool_max_size: true\n",
            r"postgres\.pool_max_size: expected an integer from 1 to 100",
        ),
        ("postgres:\n  colour: blue\n", r"postgres\.colour: unknown key; expected one of dsn"),
        ("nonsense: {}\n", r"nonsense: unknown section; expected one of postgres"),
        ("postgres: [1]\n", r"postgres: expected a mapping"),
        ("- 1\n", r"expected a mapping of sections"),
        (
            "postgres: {dsn: '${NOT_SET_ANYWHERE_42}'}\n",
            r"environment variable NOT_SET_ANYWHERE_42 is not set",
        ),
        ("postgres: [\n", r"not valid YAML"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)
    assert str(raised.value).startswith(str(path))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml")


def test_example_documents_every_key_with_its_default() -> None:
    import dataclasses

    import yaml

    from minion_daemon.config import SECTIONS, Config

    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    document = yaml.safe_load(example.read_text(encoding="utf-8"))
    assert set(document) == set(SECTIONS)
    for name, section in SECTIONS.items():
        declared = {field.name for field in dataclasses.fields(section)}
        assert set(document[name]) == declared, name
    assert load_config(example) == Config()


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("postgresql://app:s3cret@db:5432/minion", "postgresql://app:***@db:5432/minion"),
        ("host=db password=s3cret user=app", "host=db password=*** user=app"),
        ("password='with space' host=db", "password=*** host=db"),
        ("postgres://app@db/minion", "postgres://app@db/minion"),
        ("failed: postgresql://bob:hunter2@10.0.0.1/x", "failed: postgresql://bob:***@10.0.0.1/x"),
    ],
)
def test_dsn_passwords_are_redacted(text: str, redacted: str) -> None:
    from minion_daemon.config import redact_dsn

    assert redact_dsn(text) == redacted


def test_check_config_prints_the_effective_config_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minion_daemon.cli import main

    path = _write(tmp_path, "postgres: {dsn: 'postgresql://app:s3cret@db/minion'}\n")
    assert main(["check-config", str(path)]) == 0
    output = capsys.readouterr().out
    assert "s3cret" not in output
    assert "dsn: postgresql://app:***@db/minion" in output
    assert "graceful_timeout: 30" in output


def test_minion_daemon_dsn_beats_the_file_and_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "postgres:\n  dsn: host=from-the-file\n")
    environ = {"MINION_DAEMON_DSN": "host=from-the-environment"}
    assert load_config(path, environ).postgres.dsn == "host=from-the-environment"
    assert load_config(None, environ).postgres.dsn == "host=from-the-environment"
    assert load_config(path, {}).postgres.dsn == "host=from-the-file"
    assert load_config(None, {}).postgres.dsn is None
