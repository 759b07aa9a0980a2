"""Small dataset files written in tmp folders, in the official formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def interaction(db_id: str, *turns: tuple[str, str], final: tuple[str, str] | None = None) -> dict[str, Any]:
    """A SParC/CoSQL record with ``(utterance, query)`` turns."""
    record: dict[str, Any] = {
        "database_id": db_id,
        "interaction": [
            {"utterance": u, "query": q, "utterance_toks": u.split(), "sql": {"select": [False, []]}} for u, q in turns
        ],
    }
    if final is not None:
        record["final"] = {"utterance": final[0], "query": final[1]}
    return record


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


SPARC_DEV = [
    interaction(
        "concert_singer",
        ("How many singers are there?", "SELECT count(*) FROM singer"),
        ("Which of them are from France?", "SELECT name FROM singer WHERE country = 'France'"),
        final=("Names of French singers?", "SELECT name FROM singer WHERE country = 'France'"),
    ),
    interaction(
        "pets_1",
        ("¿Cuántas mascotas hay en 東京?", "SELECT count(*) FROM pets"),
        ("And their weights?", "SELECT weight\nFROM pets"),
        ("Only the heavy ones.", "SELECT weight FROM pets WHERE weight > 10 "),
    ),
]


@pytest.fixture
def sparc_dir(tmp_path: Path) -> Path:
    """``tmp/sparc/dev.json`` with two interactions (one with unicode and a newline inside a query)."""
    write_json(tmp_path / "sparc" / "dev.json", SPARC_DEV)
    return tmp_path


@pytest.fixture(name="interaction")
def interaction_fixture():
    return interaction


@pytest.fixture(name="write_json")
def write_json_fixture():
    return write_json
