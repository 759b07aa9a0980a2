"""The layers: nothing in the core imports mtsql.integrations, and importing mtsql.env imports no gymnasium."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mtsql

SRC = Path(mtsql.__file__).resolve().parent
CORE = ("sql", "data", "eval", "env", "rewards", "backends", "rollout", "models")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_never_imports_the_integrations() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(name for name in _imports(path) if name.startswith("mtsql.integrations"))
        for package in CORE
        for path in (SRC / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_importing_the_environment_imports_neither_gymnasium_nor_the_rewards() -> None:
    code = (
        "import sys, mtsql.env, mtsql.integrations; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'trl') "
        "or m.startswith(('mtsql.integrations.', 'mtsql.rewards'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
