from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mtsql.data import Dialogue, Turn

SCHEMA = """
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
QUESTIONS = (
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
        conn.executescript(SCHEMA)
        conn.commit()
    return tmp_path / "database"


@pytest.fixture
def dialogue() -> Dialogue:
    turns = tuple(Turn(index, question, sql) for index, (question, sql) in enumerate(QUESTIONS))
    return Dialogue(id="test/dev/0000", dataset="sparc", split="dev", position=0, db_id="concert", turns=turns)
