"""Importing the environment loads no integration (the import-layering contract is tests/test_layering.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mtsql

SRC = Path(mtsql.__file__).resolve().parent
CORE = ("sql", "data", "eval", "env", "rewards", "backends", "rollout", "models")


def test_importing_the_environment_imports_neither_gymnasium_nor_the_rewards() -> None:
    code = (
        "import sys, mtsql.env, mtsql.integrations; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'trl') "
        "or m.startswith(('mtsql.integrations.', 'mtsql.rewards'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
