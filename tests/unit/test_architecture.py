"""The layering rules of STYLE.md, checked by machine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wafile

SRC = Path(wafile.__file__).parent
ROOT = SRC.parent.parent
SQL_CALLS = {"select", "text", "insert", "update", "delete", "execute", "scalar", "scalars"}


def test_import_contracts_hold() -> None:
    """core is pure; cli > api > services > db > core; drivers only in db (pyproject.toml)."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _sql_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("sqlalchemy")
        ):
            names = {a.name for a in node.names} & SQL_CALLS
            found += [f"{path.name}: imports {n} from {node.module}" for n in names]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"execute", "scalar", "scalars", "exec_driver_sql"}
        ):
            found.append(f"{path.name}:{node.lineno}: .{node.func.attr}()")
    return found


def test_sql_lives_only_in_db() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if "db" in path.relative_to(SRC).parts[:1]:
            continue
        offenders += _sql_uses(path)
    assert offenders == []


def test_services_never_commit() -> None:
    for folder in ("services", "core"):
        for path in (SRC / folder).rglob("*.py"):
            assert ".commit(" not in path.read_text(), path


# Besides the standard library, core may use pure data libraries only (no I/O).
CORE_MAY_IMPORT = {"phonenumbers"}


def test_core_imports_only_the_standard_library_and_pure_data() -> None:
    offenders = []
    for path in (SRC / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                allowed = (
                    top in sys.stdlib_module_names
                    or top in CORE_MAY_IMPORT
                    or module.startswith("wafile.core")
                )
                if not allowed:
                    offenders.append(f"{path.name}: {module}")
    assert offenders == []
