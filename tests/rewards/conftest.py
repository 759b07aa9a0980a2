"""The small database of the reward tests (see ``scripted.py``)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from scripted import SCHEMA


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database folder in the official layout with one database, ``concert``."""
    root = tmp_path_factory.mktemp("rewards") / "database"
    path = root / "concert" / "concert.sqlite"
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SCHEMA)
        conn.commit()
    return root
