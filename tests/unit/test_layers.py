"""The import boundaries of STYLE.md, checked by reading the source."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "minion_daemon"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_the_backend_and_the_embedded_database_import_psycopg() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if "backend" not in path.parts
        and path.name != "embedded_pg.py"
        and any(name.split(".")[0] in ("psycopg", "psycopg_pool") for name in _imports(path))
    ]
    assert offenders == []


def test_backend_imports_nothing_above_it() -> None:
    allowed = {"minion_daemon.backend", "minion_daemon.errors", "minion_daemon.model",
               "minion_daemon.options", "minion_daemon.cron"}
    for path in (PACKAGE / "backend").glob("*.py"):
        ours = {name for name in _imports(path) if name.startswith("minion_daemon")}
        above = {name for name in ours if not any(name.startswith(a) for a in allowed)}
        assert above == set(), path.name


def test_pure_modules_import_no_io_layers() -> None:
    for name in ("errors.py", "model.py", "options.py", "cron.py"):
        ours = {i for i in _imports(PACKAGE / name) if i.startswith("minion_daemon")}
        assert ours <= {"minion_daemon.errors", "minion_daemon.model"}, name


def test_no_sql_outside_the_backend() -> None:
    keywords = ("SELECT ", "UPDATE minion", "INSERT INTO", "DELETE FROM")
    for path in _modules():
        if "backend" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert not any(keyword in text for keyword in keywords), path.name


def test_only_the_cli_and_the_supervisor_import_the_admin_ui() -> None:
    importers = {
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if "admin" not in path.relative_to(PACKAGE).parts[:1]
        and any(name.startswith("minion_daemon.admin") for name in _imports(path))
    }
    assert importers == {"cli.py", "supervisor.py"}
