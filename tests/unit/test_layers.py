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
    for name in ("errors.py", "model.py", "options.py", "cron.py", "retry.py"):
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it runs: what ``if TYPE_CHECKING:`` imports for the
    type checker alone is no dependency (``from a import b`` counts as ``a`` and ``a.b``)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                for branch in child.orelse:
                    visit(branch)
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                names.add(child.module)
                names.update(f"{child.module}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in _modules()}
    return {
        name: {other for other in _runtime_imports(path) if other in modules} - {name}
        for name, path in modules.items()
    }


#: The execution path, top to bottom: each may import only those after it. A daemon worker
#: process's bootstrap builds its Minion, whose ``worker()`` builds a Worker: the bootstrap
#: sits above the facade, the worker's loop below it.
EXECUTION_LAYERS = (
    "supervisor", "worker.process", "minion", "worker", "runners", "job", "backend",
)  # fmt: skip


def _layer(name: str) -> str:
    """The layer a module belongs to: the longest of :data:`EXECUTION_LAYERS` it is in (or
    is), else its top-level module or package (``tasks`` for tasks.discovery)."""
    inner = name.removeprefix("minion_daemon.")
    found = [layer for layer in EXECUTION_LAYERS if inner == layer or inner.startswith(f"{layer}.")]
    return max(found, key=len) if found else inner.split(".")[0]


def test_the_execution_path_imports_point_down_only() -> None:
    graph = _graph()
    for name, imported in graph.items():
        layer = _layer(name)
        if layer not in EXECUTION_LAYERS:
            continue
        above = set(EXECUTION_LAYERS[: EXECUTION_LAYERS.index(layer)])
        upward = sorted(other for other in imported if _layer(other) in above)
        assert upward == [], f"{name} imports {upward}, above it"


def test_no_import_circle_between_modules_of_different_layers() -> None:
    graph = _graph()
    layers: dict[str, set[str]] = {}
    for name, imported in graph.items():
        layers.setdefault(_layer(name), set()).update(
            _layer(other) for other in imported if _layer(other) != _layer(name)
        )

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            layer = todo.pop()
            if layer == goal:
                return True
            if layer not in seen:
                seen.add(layer)
                todo.extend(layers.get(layer, ()))
        return False

    circles = sorted(
        (layer, other) for layer, others in layers.items() for other in others
        if reaches(other, layer)
    )
    assert circles == []


def test_only_proc_forks() -> None:
    forking = sorted(
        str(path.relative_to(PACKAGE))
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in ("fork", "forkpty")
        and isinstance(node.value, ast.Name) and node.value.id == "os"
    )
    assert forking == ["proc.py"]


def test_only_contrib_imports_the_frameworks_and_nothing_imports_contrib() -> None:
    """The frameworks are optional: importing minion_daemon, or running the daemon, never
    needs one of them."""
    frameworks = ("django", "sqlalchemy")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if path.relative_to(PACKAGE).parts[0] != "contrib"
        and any(
            name.split(".")[0] in frameworks or name.startswith("minion_daemon.contrib")
            for name in _imports(path)
        )
    ]
    assert offenders == []
